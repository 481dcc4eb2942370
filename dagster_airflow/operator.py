"""DagsterOperator: one Airflow task per Dagster execution step (Airflow side).

Thin on purpose: it resolves the runner and storage named in its configuration, reads their
credentials from Airflow connections, builds a StepRequest and hands it to the runner. Building
one (what the DAG processor does many times a minute) touches no plugin, SDK or network.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from dagster_airflow.task.airflow_compat import task_arguments
from dagster_airflow.task.dag_settings import FROM_MACROS, JOB_WIDE, DagSettings
from dagster_airflow.task.step_task import StepTask

if TYPE_CHECKING:
    from dagster_airflow.task.context import DEFAULT_RUNNER

__all__ = ["DEFAULT_RUNNER", "FROM_MACROS", "JOB_WIDE", "DagsterOperator"]


def __getattr__(name: str) -> Any:
    # The runner a task without one uses; task_context is imported when first needed, not at
    # every parse of a DAG file.
    if name == "DEFAULT_RUNNER":
        from dagster_airflow.task.context import DEFAULT_RUNNER

        return DEFAULT_RUNNER
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _configuration_error(message: str) -> Exception:
    # errors is imported for a task that is wrong, not at every parse of every DAG file.
    from dagster_airflow.errors import ConfigurationError

    return ConfigurationError(message)


def _extra_links(operator: DagsterOperator) -> Sequence[Any]:
    """The task's extra links (dagster_airflow.ui.links.links_to_write), imported when first
    asked for: by Airflow's serialization of the DAG and by the worker when a task ends, not at
    each parse (Airflow's BaseOperatorLink and our links: 1.4 ms of CPU, more than half of
    importing the operator)."""
    from dagster_airflow.ui.links import links_to_write

    return links_to_write(operator)


class DagsterOperator(DagSettings, StepTask, BaseOperator):
    """Runs one Dagster execution step through a pluggable runner and intermediate storage.

    :param step_key: the Dagster step this task runs; default: the task id (the scaffold writes
        it only where the two differ).
    :param job_name: the Dagster job.
    :param code_location: where the job is defined (python_file / module_name / workspace, with
        attribute and working_directory), as the step's runner sees the file system.
    :param run_config: the job's run config; string values are Airflow templates, and one that
        renders a number or a boolean for such a field gives that type. ``run_config``, ``runner``
        and ``storage`` default to the DAG's ``default_args``; a task keeps no copy of those (see
        JOB_WIDE). ``run_config`` and ``run_config_schema`` default, after that, to the DAG's
        ``user_defined_macros``, where a scaffolded DAG keeps them (see FROM_MACROS).
    :param run_config_schema: the run config's JSON Schema; ``dag_run.conf`` keys it names (ops,
        resources ...) are deep-merged over ``run_config``, ``dag_run.conf["partition"]`` picks
        the partition.
    :param runner: ``{"name": ..., **options}`` or a name; default ``subprocess``.
    :param storage: ``{"name": ..., **options}`` or a name; default: the runner's.
    :param environment: the variables the job reads (a resource's EnvVar, ``{env: NAME}`` in
        its run config), ``{NAME: value}``, handed to the step's environment by every runner;
        values are Airflow templates (``{{ conn.warehouse.password }}``), and one read from a
        connection or a variable is masked. A None value (not filled) fails the task at once.
        The scaffold writes it as the DAG file's ``ENVIRONMENT`` (dagster_airflow.environment).
    :param mapping_key: for a mapped step (``op[?]``): the Dagster mapping key this task instance
        runs, so the step is ``op[mapping_key]``. The scaffold maps the task over the keys its
        upstream task returns (``.expand(mapping_key=upstream.output)``).
    :param mapping_keys_of: for a step with a dynamic output that later steps are mapped over:
        that output's name; the task then returns its mapping keys (never data) as its XCom.
    :param dagster_home: the team's Dagster home, as the step sees it (its dagster.yaml names the
        instance): the DAG run is then one Dagster run there (docs/dagster-instance.md). None:
        each step runs against an ephemeral instance.
    :param dagster_ui_url: the team's Dagster UI (``https://dagster.example.com``): with
        ``dagster_home``, the task's "Dagster run" link and step tab open the run there.
    :param ends_dagster_run: the DAG's end task (a teardown after every step): it runs no step,
        it ends the Dagster run in ``dagster_home`` as the DAG run ended.

    :param dagster_retries_only: retry the task only when Dagster retries the step (its
        RetryPolicy, a RetryRequested): any other failure fails it at once, and a try after a
        try that ended with no word from Dagster (a lost worker) does not run the step
        (dagster_airflow.task.retry_gate). The scaffold sets it in DEFAULT_ARGS, with retries
        enough for Dagster's retry requests.
    :param schedule: this task runs no step: it evaluates the tick of the job's Dagster schedule
        of that name at the run's logical date, on the Dagster side, and returns the run config
        and tags of this run (or skips, with the schedule's SkipReason).
    :param schedule_tick: the task id of that tick task: the step takes this run's run config
        and tags from it instead of the DAG's, and skips when the tick skipped.
    :param run_tags: tags of the Dagster run (a schedule's), besides the job's own.
    :param deferrable: whether a remote runner's step (docker, ecs, graphql ...) defers to
        Airflow's triggerer while it runs, freeing its worker slot; default: on, unless
        ``[dagster_airflow] deferrable`` is False in the deployment's configuration
        (dagster_airflow.task.deferral).

    Its Airflow ``retry_policy`` defaults to `DagsterRetryPolicy`: a step that Dagster retries
    is retried after Dagster's own delay (see dagster_airflow.task.outcome). The policy is made
    when first asked for (by Airflow's task runner, as the task fails), not for every task at
    each parse of the DAG file.
    """

    # mapping_key is a template field so that, in a mapped task group, Airflow resolves it.
    template_fields: Sequence[str] = (
        "run_config",
        "runner",
        "storage",
        "environment",
        "mapping_key",
    )
    # Airflow 3 computes these in the worker when the task ends and shows them in the UI; a
    # property so that the worker writes only the links that have a URL (ui/links.py).
    operator_extra_links = property(_extra_links)
    ui_color = "#d6d4fb"
    ui_fgcolor = "#1e1b4b"
    # What a task has unless it was given its own (see __init__).
    run_config: Mapping[str, Any] | None = None
    run_config_source: Mapping[str, Any] | None = None
    run_config_schema: Mapping[str, Any] | None = None
    runner: Mapping[str, Any] | str | None = None
    runner_source: Mapping[str, Any] | str | None = None
    storage: Mapping[str, Any] | str | None = None
    environment: Mapping[str, str | None] | None = None
    environment_source: Mapping[str, str | None] | None = None
    mapping_key: Any = None
    mapping_keys_of: str | None = None
    dagster_retries_only: bool = False
    dagster_home: str | None = None
    dagster_ui_url: str | None = None
    ends_dagster_run: bool = False
    schedule: str | None = None
    schedule_tick: str | None = None
    run_tags: Mapping[str, str] = MappingProxyType({})
    deferrable: bool | None = None

    def __init__(
        self,
        *,
        step_key: str | None = None,
        job_name: str,
        code_location: Mapping[str, Any],
        run_config: Mapping[str, Any] | None = None,
        run_config_schema: Mapping[str, Any] | None = None,
        runner: Mapping[str, Any] | str | None = None,
        storage: Mapping[str, Any] | str | None = None,
        environment: Mapping[str, str | None] | None = None,
        mapping_key: Any = None,
        mapping_keys_of: str | None = None,
        dagster_retries_only: bool = False,
        dagster_home: str | None = None,
        dagster_ui_url: str | None = None,
        ends_dagster_run: bool = False,
        schedule: str | None = None,
        schedule_tick: str | None = None,
        run_tags: Mapping[str, str] | None = None,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**task_arguments(kwargs))  # as this Airflow version takes them
        step_key = self.task_id if step_key is None else step_key
        if step_key.endswith("[?]") and mapping_key is None:
            raise _configuration_error(
                f"task {self.task_id!r} runs the mapped step {step_key!r} but has no "
                "mapping_key; map it over its upstream task's keys: "
                "DagsterOperator.partial(...).expand(mapping_key=upstream.output)."
            )
        if not isinstance(code_location, Mapping):
            raise _configuration_error(
                f"task {self.task_id!r}: code_location must be a dict such as "
                f'{{"python_file": "/path/to/jobs.py"}}, got {code_location!r}.'
            )
        if run_config is not None and not isinstance(run_config, Mapping):
            raise _configuration_error(
                f"task {self.task_id!r}: run_config must be a dict, got {run_config!r}."
            )
        # What every scaffolded task sets, in one step rather than through BaseOperator's
        # __setattr__ each (about 0.7 us of CPU apiece, a tenth of what a task costs more than
        # an EmptyOperator at parse): none is a template field, an argument of BaseOperator or
        # one with a converter, and the task is not built yet, so that __setattr__ would do
        # nothing more for them.
        self.__dict__.update(
            step_key=step_key,
            job_name=job_name,
            code_location=code_location,
            dagster_retries_only=dagster_retries_only,
        )
        # Set only where given: the DAG processor builds every task of the file at each parse,
        # and each attribute an operator sets goes through BaseOperator.__setattr__; the class
        # attributes below are the defaults.
        if run_config_schema:
            self.run_config_schema = run_config_schema
        # A job-wide value the task got from the DAG's default_args is left there (None here)
        # and taken when the task renders its templates: Airflow then stores and serves it once
        # for the DAG, not once for every task (a job's run config grows with its ops).
        if run_config is not None and run_config is not self._dag_default("run_config"):
            self.run_config = run_config
            # As written, before Airflow renders its templates: which values were templates.
            self.run_config_source = copy.deepcopy(run_config)
        if runner is not None and runner is not self._dag_default("runner"):
            self.runner = runner
            # As written: which of the runner's options are templates (that may read secrets).
            self.runner_source = copy.deepcopy(runner)
        if storage is not None and storage is not self._dag_default("storage"):
            self.storage = storage
        if mapping_key is not None:
            self.mapping_key = mapping_key
        if mapping_keys_of is not None:
            self.mapping_keys_of = mapping_keys_of
        if environment is not None and environment is not self._dag_default("environment"):
            self.environment = environment
            # As written: which of its values are templates (that may read secrets).
            self.environment_source = copy.deepcopy(environment)
        if dagster_home is not None:
            self.dagster_home = dagster_home
        if dagster_ui_url is not None:
            self.dagster_ui_url = dagster_ui_url
        if ends_dagster_run:
            self.ends_dagster_run = ends_dagster_run
        if schedule is not None:
            self.schedule = schedule
        elif schedule_tick is not None:
            self.schedule_tick = schedule_tick
        if run_tags:
            self.run_tags = dict(run_tags)
        if deferrable is not None:
            self.deferrable = deferrable
