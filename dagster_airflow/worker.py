"""Inside the step's process: StepRequest -> one Dagster step -> events -> exit code (Dagster side).

The step runs under the run id derived from the Airflow run, with an ephemeral instance: steps
share nothing but that id and the intermediate storage. Every Dagster event (and every message
the op logs) is printed as one JSON line as it happens, and the whole event log is written next
to the step's outputs at the end.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import traceback
from typing import Any, TextIO

from dagster_airflow.errors import DagsterAirflowError
from dagster_airflow.event_details import DETAILED_EVENTS, event_details
from dagster_airflow.model import StepError, StepEvent, StepRequest
from dagster_airflow.storage.base import EVENT_LOG_NAME, IntermediateStorage

EXIT_SUCCESS, EXIT_FAILURE, EXIT_BAD_REQUEST = 0, 1, 2
STOPPED_BEFORE_IT_RAN = (
    "the step was stopped before it ran (SIGTERM or SIGINT: a kill or a timeout)"
)
STOPPED_WHILE_IT_RAN = "the step was stopped while it ran (SIGTERM or SIGINT: a kill or a timeout)"


def _error_from_info(info: Any) -> StepError:
    """A StepError from Dagster's SerializableErrorInfo, causes included."""
    class_name = info.cls_name or "Error"
    # Dagster's message repeats the class (`dagster._core.errors.X: text`): keep the text.
    message = re.sub(rf"^[\w.]*{re.escape(class_name)}(: |$)", "", info.message.strip())
    if class_name == "DagsterExecutionInterruptedError" and not message:
        message = STOPPED_WHILE_IT_RAN
    return StepError(
        class_name=class_name,
        message=message,
        stack="".join(info.stack),
        cause=_error_from_info(info.cause) if info.cause else None,
    )


def _error_from_exception(exc: BaseException) -> StepError:
    cause = exc.__cause__
    return StepError(
        class_name=type(exc).__name__,
        message=str(exc),
        stack=""
        if isinstance(exc, DagsterAirflowError)
        else "".join(traceback.format_tb(exc.__traceback__)),
        cause=_error_from_exception(cause)
        if cause and not isinstance(exc, DagsterAirflowError)
        else None,
    )


class EventPrinter:
    """Prints events as JSON lines and keeps them for the step's event log."""

    def __init__(self, stream: TextIO, step_key: str) -> None:
        self.stream = stream
        self.step_key = step_key
        self.events: list[StepEvent] = []

    def emit(self, event: StepEvent) -> None:
        self.events.append(event)
        self.stream.write(event.to_json() + "\n")
        self.stream.flush()

    def fail(self, exc: BaseException, message: str) -> None:
        self.emit(
            StepEvent(
                "STEP_FAILURE",
                message,
                step_key=self.step_key,
                level="ERROR",
                timestamp=time.time(),
                error=_error_from_exception(exc),
            )
        )

    def failed(self) -> bool:
        return any(e.event_type == "STEP_FAILURE" for e in self.events)

    def succeeded(self) -> bool:
        return any(e.event_type in ("STEP_SUCCESS", "STEP_SKIPPED") for e in self.events)


class StepWorker:
    """Executes exactly one step of a job, as a request describes it."""

    def __init__(self, request: StepRequest, storage: IntermediateStorage, out: TextIO) -> None:
        self.request = request
        self.storage = storage
        self.printer = EventPrinter(out, request.step_key)

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
        self._write_event_log()
        return EXIT_SUCCESS if self.printer.succeeded() else EXIT_FAILURE

    def _execute(self) -> None:
        from dagster import DagsterInstance
        from dagster._core.definitions.job_base import InMemoryJob
        from dagster._core.execution.api import create_execution_plan, execute_plan_iterator

        from dagster_airflow.code_location import load_job
        from dagster_airflow.compile import quiet_console_run_config, validation_error
        from dagster_airflow.storage.io_manager import (
            IntermediateIOManager,
            intermediate_io_manager,
        )

        request = self.request
        job = load_job(request.code_location, request.job_name)
        self.io_manager = IntermediateIOManager(self.storage, run_id=request.run_id)
        job = job.with_top_level_resources(
            {**job.resource_defs, "io_manager": intermediate_io_manager(self.io_manager)}
        )
        run_config, partition_tags = self._partition_run(job)
        run_config = quiet_console_run_config(job, run_config)
        in_memory_job = InMemoryJob(job)
        try:
            plan = create_execution_plan(
                in_memory_job,
                run_config=run_config,
                step_keys_to_execute=[request.step_key],
                tags=partition_tags,
            )
        except Exception as exc:
            where = "the DAG's run_config or the DAG run's conf"
            raise validation_error(exc, request.job_name, where) from None
        if request.step_key not in plan.step_dict_by_key:
            raise DagsterAirflowError(
                f"job {request.job_name!r} has no step {request.step_key!r}; the DAG file is "
                "out of date with the job: scaffold it again."
            )
        if self._skip_for_missing_inputs(plan):
            return

        instance = DagsterInstance.ephemeral()
        instance.add_event_listener(request.run_id, self._on_entry)
        dagster_run = instance.create_run_for_job(
            job_def=job,
            execution_plan=plan,
            run_id=request.run_id,
            run_config=run_config,
            tags=self._tags() | partition_tags,
        )
        for _ in execute_plan_iterator(
            plan, in_memory_job, dagster_run, instance, run_config=run_config
        ):
            pass

    def _partition_run(self, job) -> tuple[dict[str, Any], dict[str, str]]:
        """The run config and tags of the DAG run's partition (none for an unpartitioned job)."""
        from dagster_airflow.partitions import partition_for_run, run_for_partition

        request = self.request
        key = partition_for_run(job, request.partition_key, request.logical_date)
        return run_for_partition(job, key, request.run_config)

    def _tags(self) -> dict[str, str]:
        tags = {"dagster-airflow/attempt": str(self.request.attempt)}
        if self.request.task:
            task = self.request.task
            tags |= {
                "dagster-airflow/dag_id": task.dag_id,
                "dagster-airflow/task_id": task.task_id,
                "dagster-airflow/airflow_run_id": task.run_id,
            }
        return tags

    def _skip_for_missing_inputs(self, plan) -> bool:
        """Skip the step when an upstream optional output was not produced (Dagster, running one
        step, would fail to load the input instead); fail clearly when a required one is gone."""
        step = plan.get_step_by_key(self.request.step_key)
        for step_input in step.step_inputs:
            for handle in step_input.get_step_output_handle_dependencies():
                key = self.storage.key(self.request.run_id, handle.step_key, handle.output_name)
                if self.storage.exists(key):
                    continue
                output = plan.get_step_output(handle)
                if output.is_required:
                    raise DagsterAirflowError(
                        f"input {step_input.name!r} of step {step.key!r} needs output "
                        f"{handle.output_name!r} of step {handle.step_key!r}, which is not at "
                        f"{self.storage.uri(key)!r}; run the upstream task in this DAG run first."
                    )
                self.printer.emit(
                    StepEvent(
                        "STEP_SKIPPED",
                        f"upstream step {handle.step_key!r} did not produce its optional output "
                        f"{handle.output_name!r} (input {step_input.name!r}).",
                        step_key=step.key,
                        timestamp=time.time(),
                    )
                )
                return True
        return False

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
        if kind == "LOADED_INPUT" and data.upstream_step_key:
            fields = {
                "input_name": data.input_name,
                "uri": self.uri(data.upstream_step_key, data.upstream_output_name),
            }
        elif kind == "HANDLED_OUTPUT":
            fields = {
                "output_name": data.output_name,
                "uri": self.io_manager.written.get(data.output_name),
            }
        elif kind == "STEP_FAILURE":
            fields = {"error": _error_from_info(data.error)}
        elif kind in DETAILED_EVENTS:
            fields = event_details(event)
            if kind == "HOOK_ERRORED":
                fields["error"] = _error_from_info(data.error)
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

    def _write_event_log(self) -> None:
        key = self.storage.key(self.request.run_id, self.request.step_key, EVENT_LOG_NAME)
        body = "".join(e.to_json() + "\n" for e in self.printer.events)
        try:
            self.storage.put_bytes(key, body.encode())
        except Exception as exc:  # the step's result stands; say why its log is missing
            self.printer.stream.write(
                f"could not write the step's event log to {self.storage.uri(key)}: {exc}\n"
            )


def execute_step(request_text: str, out: TextIO = sys.stdout) -> int:
    """Run the step a request's JSON describes; the exit code of `dagster-airflow execute-step`."""
    from dagster_airflow.plugins.manager import get_plugins

    try:
        request = StepRequest.from_json(request_text)
    except DagsterAirflowError as exc:
        out.write(f"dagster-airflow execute-step: {exc}\n")
        return EXIT_BAD_REQUEST
    try:
        storage = get_plugins().storage(request.storage.name).create(request.storage.options)
    except DagsterAirflowError as exc:
        EventPrinter(out, request.step_key).fail(exc, str(exc))
        return EXIT_FAILURE
    return StepWorker(request, storage, out).run()
