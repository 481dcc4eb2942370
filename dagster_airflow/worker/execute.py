"""Inside the step's process: StepRequest -> one Dagster step -> events -> exit code (Dagster side).

The step runs under the run id derived from the Airflow run, with an ephemeral instance: steps
share nothing but that id and the intermediate storage. Every Dagster event (and every message
the op logs) is printed as one JSON line as it happens, and the whole event log is written next
to the step's outputs at the end.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from dagster_airflow.errors import ConfigurationError, DagsterAirflowError
from dagster_airflow.model import StepRequest
from dagster_airflow.redaction import Redactor, redacted_output
from dagster_airflow.step_result import (
    EXIT_FAILURE,
    EXIT_NO_RETRY,
    EXIT_SUCCESS,
    EXIT_UP_FOR_RETRY,
    STOPPED_BEFORE_IT_RAN,
    StepEvent,
)
from dagster_airflow.storage.base import IntermediateStorage
from dagster_airflow.worker import interrupts
from dagster_airflow.worker.event_details import DETAILED_EVENTS, event_details, json_safe_metadata
from dagster_airflow.worker.event_printer import STOPPED_WHILE_IT_RAN, EventPrinter, error_from_info
from dagster_airflow.worker.step_record import write_event_log, write_record

EXIT_BAD_REQUEST = EXIT_NO_RETRY
# The error classes of a failure that Dagster's own retry machinery decided was final.
_RETRY_REQUESTED = ("RetryRequested", "RetryRequestedFromPolicy")


def previous_retry_attempts(request: StepRequest) -> dict[str, int]:
    """How many attempts of the step came before this one, for Dagster's KnownExecutionState.

    Dagster's own executors count a step's attempts in the run; here each attempt is an Airflow
    try, so the count comes from the request (the Airflow tries since the task's last clear).
    Dagster decides from it whether a failure is retried (`RetryPolicy.max_retries`,
    `RetryRequested.max_retries`) and shows it to the op as `context.retry_number`.
    """
    return {request.step_key: request.previous_attempts}


class StepWorker:
    """Executes exactly one step of a job, as a request describes it."""

    def __init__(
        self,
        request: StepRequest,
        storage: IntermediateStorage,
        out: TextIO,
        redactor: Redactor | None = None,
    ) -> None:
        self.request = request
        self.storage = storage
        self.printer = EventPrinter(out, request.step_key, request.attempt, redactor)
        # Whether Dagster's retry machinery governs this step (it has a RetryPolicy).
        self.has_retry_policy = False
        self._mapping_keys: dict[str, str | None] = {}  # output name -> its last mapping key

    def uri(self, step_key: str, output_name: str) -> str:
        return self.storage.uri(self.storage.key(self.request.run_id, step_key, output_name))

    def run(self) -> int:
        try:
            self._execute()
        except KeyboardInterrupt as exc:  # SIGTERM or SIGINT before Dagster's execution began
            exc.args = (STOPPED_BEFORE_IT_RAN,)
            self.printer.fail(exc, f"Step {self.request.step_key!r}: {STOPPED_BEFORE_IT_RAN}.")
        except Exception as exc:
            self.printer.fail(exc, f"Step {self.request.step_key!r} could not run: {exc}")
        except BaseException as exc:
            # Dagster reports an interruption while the step ran as its STEP_FAILURE, then
            # re-raises it (a BaseException): the step ends here and writes its event log, with
            # no uncaught traceback after the one clear line.
            if type(exc).__name__ != "DagsterExecutionInterruptedError":
                raise
            if not self.printer.failed():
                self.printer.fail(exc, f"Step {self.request.step_key!r}: {STOPPED_WHILE_IT_RAN}.")
        write_record(self.storage, self.request, self.printer)
        write_event_log(self.storage, self.request, self.printer)
        return self._exit_code()

    def _exit_code(self) -> int:
        """Success; up for retry (Dagster retries the step); a failure Airflow's own retries may
        retry (an op without a Dagster retry policy); or one no retry changes."""
        outcome = self.printer.outcome()
        if outcome is None or outcome.event_type == "STEP_FAILURE":
            if self.printer.not_retryable or self._dagster_said_final(outcome):
                return EXIT_NO_RETRY
            return EXIT_FAILURE
        if outcome.event_type == "STEP_UP_FOR_RETRY":
            return EXIT_UP_FOR_RETRY
        return EXIT_SUCCESS

    def _dagster_said_final(self, failure: StepEvent | None) -> bool:
        """Dagster's retry decision applied to this failure: it was final, as in Dagster's run."""
        if failure is None or failure.error is None:
            return False
        return self.has_retry_policy or failure.error.class_name in _RETRY_REQUESTED

    def _execute(self) -> None:
        from dagster_airflow.job.code_location import load_job
        from dagster_airflow.job.compile import validation_error
        from dagster_airflow.job.dagster_compat import (
            InMemoryJob,
            RetryMode,
            create_execution_plan,
            execute_plan_iterator,
        )
        from dagster_airflow.worker.instance import (
            record_skip,
            step_run,
            without_fallback_console_logger,
        )
        from dagster_airflow.worker.io_manager import (
            IntermediateIOManager,
            intermediate_io_manager,
        )

        request = self.request
        job = load_job(request.code_location, request.job_name)
        self.io_manager = IntermediateIOManager(
            self.storage, run_id=request.run_id, redact=self.printer.redactor.text
        )
        job = job.with_top_level_resources(
            {**job.resource_defs, "io_manager": intermediate_io_manager(self.io_manager)}
        )
        run_config, partition_tags = self._partition_run(job)
        # The run's tags as Dagster's would be: the job's, a schedule's, the partition's.
        partition_tags = dict(job.run_tags or {}) | request.run_tags | partition_tags
        self.partition_tags = partition_tags
        in_memory_job = InMemoryJob(job)
        try:
            full_plan = create_execution_plan(
                in_memory_job, run_config=run_config, tags=partition_tags
            )
        except Exception as exc:
            from dagster_airflow.worker.stale_dag import stale_dag_error

            # A renamed or removed op fails the planner first; say the true cause.
            stale = stale_dag_error(job, request.job_name, request.step_key, request.run_config)
            where = "the DAG's run_config or the DAG run's conf"
            raise stale or validation_error(exc, request.job_name, where) from None
        plan = self._plan_step(job, in_memory_job, run_config, full_plan)
        if plan is None:  # skipped: the team's Dagster (when there is one) sees the skip too
            record_skip(request, job, full_plan, run_config, partition_tags, self.printer)
            return
        step = plan.get_step_by_key(request.step_key)
        self.has_retry_policy = job.get_retry_policy_for_handle(step.node_handle) is not None

        interrupts.raise_if_asked()  # a stop that came while loading, and was swallowed
        # The step's own ephemeral run, or the DAG run's in the team's instance (instance.py).
        with step_run(request, job, full_plan, plan, run_config, partition_tags) as (
            instance,
            run,
        ):
            instance.add_event_listener(request.run_id, self._on_entry)
            # DEFERRED, as Dagster's own step workers run: a failure with retries left ends
            # the step in STEP_UP_FOR_RETRY and the next attempt is someone else's (Airflow's
            # next try); ENABLED would retry it here, within one Airflow try.
            with without_fallback_console_logger():
                for _ in execute_plan_iterator(
                    plan,
                    in_memory_job,
                    run,
                    instance,
                    retry_mode=RetryMode.DEFERRED,
                    run_config=run_config,
                ):
                    pass

    def _plan_step(self, job, in_memory_job, run_config, full_plan):
        """The plan of the one step, with the run's known state as Dagster's own executor would
        hand it over (ready outputs, mapping keys); None when the step is skipped."""
        from dagster_airflow.job.dagster_compat import KnownExecutionState, create_execution_plan
        from dagster_airflow.worker.run_state import RunState, unresolved_key

        request = self.request
        if unresolved_key(request.step_key) not in full_plan.step_dict_by_key:
            from dagster_airflow.worker.stale_dag import stale_dag_error

            raise stale_dag_error(
                job, request.job_name, request.step_key, request.run_config
            ) or ConfigurationError(
                f"job {request.job_name!r} has no step {request.step_key!r}; the DAG file is "
                "out of date with the job: scaffold it again."
            )
        state = RunState(self.storage, request.run_id)
        mappings = state.dynamic_mappings(full_plan, request.step_key)
        state.check_resolvable(full_plan, request.step_key, mappings)
        known = KnownExecutionState(
            previous_retry_attempts=previous_retry_attempts(request),
            dynamic_mappings=mappings,
            ready_outputs=state.ready_outputs(),
        )
        plan = create_execution_plan(
            in_memory_job,
            run_config=run_config,
            step_keys_to_execute=[request.step_key],
            known_state=known,
            tags=self.partition_tags,
        )
        skipped, extra_ready = state.missing_inputs(plan, request.step_key)
        if skipped:
            self.printer.emit(
                StepEvent(
                    "STEP_SKIPPED",
                    skipped,
                    step_key=request.step_key,
                    timestamp=time.time(),
                )
            )
            return None
        # Outputs that are no object in the storage (Nothing, other IO managers) are ready too.
        return plan._replace(
            known_state=known._replace(ready_outputs=known.ready_outputs | extra_ready)
        )

    def _partition_run(self, job) -> tuple[dict[str, Any], dict[str, str]]:
        """The run config and tags of the DAG run's partition (none for an unpartitioned job)."""
        from dagster_airflow.job.partitions import partition_for_run, run_for_partition

        request = self.request
        key = partition_for_run(job, request.partition_key, request.logical_date)
        return run_for_partition(job, key, request.run_config)

    def _on_entry(self, entry) -> None:
        event = entry.dagster_event
        if event is None:
            self.printer.emit(
                StepEvent(
                    "LOG",
                    entry.user_message,
                    step_key=entry.step_key,
                    level=logging.getLevelName(entry.level),
                    timestamp=entry.timestamp,
                )
            )
            return
        fields: dict[str, Any] = {}
        data = event.event_specific_data
        kind = event.event_type_value
        if kind == "STEP_OUTPUT":
            handle = data.step_output_handle
            self._mapping_keys[handle.output_name] = handle.mapping_key
            fields = {
                "output_name": handle.output_name,
                "mapping_key": handle.mapping_key,
                # The op's own metadata of the output (Output(metadata=...)), for the step view.
                "metadata": json_safe_metadata(data.metadata) or None,
            }
        elif kind == "LOADED_INPUT" and data.upstream_step_key:
            fields = {
                "input_name": data.input_name,
                "uri": self.uri(data.upstream_step_key, data.upstream_output_name),
            }
        elif kind == "HANDLED_OUTPUT":
            mapping_key = self._mapping_keys.get(data.output_name)
            fields = {
                "output_name": data.output_name,
                "mapping_key": mapping_key,
                "uri": self.io_manager.written.get(data.output_name),
                # Type, size and a short repr, so that no reader needs to unpickle the object.
                "metadata": self.io_manager.previews.get((data.output_name, mapping_key)),
            }
        elif kind == "STEP_FAILURE":
            fields = {"error": error_from_info(data.error)}
        elif kind in DETAILED_EVENTS:
            fields = event_details(event)
            if kind == "HOOK_ERRORED":
                fields["error"] = error_from_info(data.error)
        elif kind == "STEP_UP_FOR_RETRY":
            fields = {
                "error": error_from_info(data.error),
                "seconds_to_wait": data.seconds_to_wait,
            }
        self.printer.emit(
            StepEvent(
                kind,
                event.message or "",
                step_key=event.step_key,
                level=logging.getLevelName(entry.level),
                timestamp=entry.timestamp,
                **fields,
            )
        )


def execute_step(
    request_text: str, out: TextIO = sys.stdout, environ: Mapping[str, str] = os.environ
) -> int:
    """Run the step a request's JSON describes; the exit code of `dagster-airflow execute-step`.

    The secrets that ``environ`` names (dagster_airflow.redaction) are redacted from everything
    the step writes: its events and event log, and this process's output, its children's too.
    """
    try:
        redactor = Redactor.from_environ(environ)
    except ConfigurationError as exc:
        out.write(f"dagster-airflow execute-step: {exc}\n")
        return EXIT_BAD_REQUEST
    with redacted_output(redactor):
        return _execute_step(request_text, out, redactor)


def _execute_step(request_text: str, out: TextIO, redactor: Redactor) -> int:
    from dagster_airflow.plugins.manager import get_plugins

    try:
        request = StepRequest.from_json(request_text)
    except DagsterAirflowError as exc:
        out.write(redactor.text(f"dagster-airflow execute-step: {exc}") + "\n")
        return EXIT_BAD_REQUEST
    if request.run_end:
        return _end_run(request, out, redactor)
    if request.schedule_name is not None:  # not a step: a tick of the job's schedule
        from dagster_airflow.worker.schedule_tick import evaluate_for_request

        return evaluate_for_request(request, EventPrinter(out, request.step_key, None, redactor))
    try:
        storage = get_plugins().storage(request.storage.name).create(request.storage.options)
    except DagsterAirflowError as exc:
        printer = EventPrinter(out, request.step_key, request.attempt, redactor)
        printer.fail(exc, str(exc))
        return printer.failure_exit_code()
    return StepWorker(request, storage, out, redactor).run()


def _end_run(request: StepRequest, out: TextIO, redactor: Redactor) -> int:
    """The DAG's end task: no step; the shared Dagster run ends (worker/instance.py)."""
    from dagster_airflow.worker.instance import end_run

    printer = EventPrinter(out, request.step_key, request.attempt, redactor)
    try:
        message = end_run(request)
    except Exception as exc:
        printer.fail(exc, f"could not end the Dagster run {request.run_id}: {exc}")
        return printer.failure_exit_code()
    for kind in ("ENGINE_EVENT", "STEP_SUCCESS"):
        printer.emit(StepEvent(kind, message, step_key=request.step_key, timestamp=time.time()))
    return EXIT_SUCCESS
