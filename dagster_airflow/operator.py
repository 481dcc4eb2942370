"""DagsterOperator: one Airflow task per Dagster execution step (Airflow side).

Thin on purpose: it resolves the runner and storage named in its configuration, reads their
credentials from Airflow connections, builds a StepRequest and hands it to the runner. Building
one (what the DAG processor does many times a minute) touches no plugin, SDK or network.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Context

from dagster_airflow.errors import ConfigurationError, PluginError, RunConfigError
from dagster_airflow.task.airflow_compat import AirflowFailException, task_arguments
from dagster_airflow.task.outcome import DagsterRetryPolicy
from dagster_airflow.ui.links import DAGSTER_LINKS

if TYPE_CHECKING:
    from dagster_airflow.task.context import DEFAULT_RUNNER

__all__ = ["DEFAULT_RUNNER", "DagsterOperator"]


def __getattr__(name: str) -> Any:
    # The runner a task without one uses; task_context is imported when first needed, not at
    # every parse of a DAG file.
    if name == "DEFAULT_RUNNER":
        from dagster_airflow.task.context import DEFAULT_RUNNER

        return DEFAULT_RUNNER
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The template fields a task takes from the DAG's default_args (DEFAULT_ARGS) unless it has its own.
JOB_WIDE = ("run_config", "runner", "storage")


class DagsterOperator(BaseOperator):
    """Runs one Dagster execution step through a pluggable runner and intermediate storage.

    :param step_key: the Dagster step this task runs; default: the task id (the scaffold writes
        it only where the two differ).
    :param job_name: the Dagster job.
    :param code_location: where the job is defined (python_file / module_name / workspace, with
        attribute and working_directory), as the step's runner sees the file system.
    :param run_config: the job's run config; string values are Airflow templates, and one that
        renders a number or a boolean for such a field gives that type. ``run_config``, ``runner``
        and ``storage`` default to the DAG's ``default_args``; a task keeps no copy of those (see
        JOB_WIDE).
    :param run_config_schema: the run config's JSON Schema; ``dag_run.conf`` keys it names (ops,
        resources ...) are deep-merged over ``run_config``, ``dag_run.conf["partition"]`` picks
        the partition.
    :param runner: ``{"name": ..., **options}`` or a name; default ``subprocess``.
    :param storage: ``{"name": ..., **options}`` or a name; default: the runner's.
    :param mapping_key: for a mapped step (``op[?]``): the Dagster mapping key this task instance
        runs, so the step is ``op[mapping_key]``. The scaffold maps the task over the keys its
        upstream task returns (``.expand(mapping_key=upstream.output)``).
    :param mapping_keys_of: for a step with a dynamic output that later steps are mapped over:
        that output's name; the task then returns its mapping keys (never data) as its XCom.

    Its Airflow ``retry_policy`` defaults to `DagsterRetryPolicy`: a step that Dagster retries
    is retried after Dagster's own delay (see dagster_airflow.task.outcome).
    """

    # mapping_key is a template field so that, in a mapped task group, Airflow resolves it.
    template_fields: Sequence[str] = ("run_config", "runner", "storage", "mapping_key")
    # Airflow 3 computes these in the worker when the task ends and shows them in the UI.
    operator_extra_links = DAGSTER_LINKS
    ui_color = "#d6d4fb"
    ui_fgcolor = "#1e1b4b"

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
        mapping_key: Any = None,
        mapping_keys_of: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs = task_arguments(kwargs, DagsterRetryPolicy)  # as this Airflow version takes them
        super().__init__(**kwargs)
        step_key = self.task_id if step_key is None else step_key
        if step_key.endswith("[?]") and mapping_key is None:
            raise ConfigurationError(
                f"task {self.task_id!r} runs the mapped step {step_key!r} but has no "
                "mapping_key; map it over its upstream task's keys: "
                "DagsterOperator.partial(...).expand(mapping_key=upstream.output)."
            )
        if not isinstance(code_location, Mapping):
            raise ConfigurationError(
                f"task {self.task_id!r}: code_location must be a dict such as "
                f'{{"python_file": "/path/to/jobs.py"}}, got {code_location!r}.'
            )
        if run_config is not None and not isinstance(run_config, Mapping):
            raise ConfigurationError(
                f"task {self.task_id!r}: run_config must be a dict, got {run_config!r}."
            )
        self.step_key = step_key
        self.job_name = job_name
        self.code_location = code_location
        # A job-wide value the task got from the DAG's default_args is left there (None here)
        # and taken when the task renders its templates: Airflow then stores and serves it once
        # for the DAG, not once for every task (a job's run config grows with its ops).
        own = {"run_config": run_config, "runner": runner, "storage": storage}
        for name, value in own.items():
            if value is not None and value is self._dag_default(name):
                own[name] = None
        self.run_config = own["run_config"]
        # As written, before Airflow renders its templates: which values were templates.
        self.run_config_source = copy.deepcopy(self.run_config)
        self.run_config_schema = run_config_schema or {}
        self.runner = own["runner"]
        # As written: which of the runner's options are templates (that may read secrets).
        self.runner_source = copy.deepcopy(self.runner)
        self.storage = own["storage"]
        self.mapping_key = mapping_key
        self.mapping_keys_of = mapping_keys_of

    def _dag_default(self, name: str) -> Any:
        return self.dag.default_args.get(name) if self.has_dag() else None

    def setting(self, name: str) -> Any:
        """The task's ``run_config``, ``runner`` or ``storage`` (one of JOB_WIDE): its own, else
        the DAG's default_args one, as written (templates not rendered)."""
        own = getattr(self, name)
        return own if own is not None else self._dag_default(name)

    def _take_dag_defaults(self) -> None:
        """The DAG's run config, runner and storage as this task's own where it has none."""
        for name in JOB_WIDE:
            if getattr(self, name) is None:
                setattr(self, name, copy.deepcopy(self._dag_default(name)))
        if self.run_config is None:
            self.run_config = {}
        if self.run_config_source is None:
            self.run_config_source = copy.deepcopy(self.run_config)
        if self.runner_source is None:
            self.runner_source = copy.deepcopy(self.runner)

    def _do_render_template_fields(self, parent, template_fields, context, jinja_env, seen_oids):
        # Airflow renders a task (mapped or not) through this method: the DAG's values are
        # rendered, and shown among the task's rendered templates, as the task's own would be.
        if parent is self:
            self._take_dag_defaults()
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)

    @property
    def dagster_step_key(self) -> str:
        """The Dagster step this task instance runs: ``op[piece_3]`` for a mapped step."""
        if self.mapping_key is None:
            return self.step_key
        return f"{self.step_key.removesuffix('[?]')}[{self.mapping_key}]"

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        super().render_template_fields(context, jinja_env)
        from dagster_airflow.task.context import mask_templated

        # Now, before Airflow records the rendered fields for its "Rendered Template" view.
        mask_templated(self.runner, self.runner_source)

    def execute(self, context: Context) -> dict[str, str] | list[str]:
        # Imported here, not at module level: the DAG processor never needs them.
        from dagster_airflow.distribution import retired_package_problem
        from dagster_airflow.model import CodeLocation, StepRequest, TaskRef, dagster_run_id
        from dagster_airflow.run_conf import PARTITION_KEY, run_config_for_run
        from dagster_airflow.task import context as task_context
        from dagster_airflow.task.outcome import raise_for, retry_number

        if retired_package_problem():
            self.log.warning("%s", retired_package_problem())
        self._take_dag_defaults()  # a task executed without rendering its templates
        ti = context["ti"]
        conf = getattr(context.get("dag_run"), "conf", None) or {}
        logical_date = context.get("logical_date")
        try:  # a misconfigured task fails at once: no retry would fix it
            resolved = task_context.resolve(self.runner, self.storage)
            # The storage, once: the links read it too.
            setattr(self, task_context.RESOLVED, resolved)
            self._step_runner = resolved.runner.create(resolved.runner_spec.options)
            request = StepRequest(
                code_location=CodeLocation.from_dict(self.code_location),
                job_name=self.job_name,
                step_key=self.dagster_step_key,
                run_id=dagster_run_id(self.dag_id, context["run_id"]),
                run_config=run_config_for_run(
                    self.run_config, self.run_config_source, conf, self.run_config_schema
                ),
                storage=resolved.storage_spec,
                attempt=ti.try_number,
                task=TaskRef(
                    self.dag_id, self.task_id, context["run_id"], ti.map_index, ti.try_number
                ),
                retry_number=retry_number(ti.try_number, ti.max_tries, self.retries or 0),
                partition_key=conf.get(PARTITION_KEY),
                logical_date=logical_date.isoformat() if logical_date else None,
            )
        except (ConfigurationError, PluginError, RunConfigError) as exc:
            raise AirflowFailException(f"task {self.task_id!r}: {exc}") from exc
        # Again: a mapped task's rendering (MappedOperator's) does not call the method above.
        task_context.mask_templated(self.runner, self.runner_source)
        secret_env = resolved.storage.credentials_env(task_context.connection)
        run_context = task_context.for_task(self.log, resolved.storage, secret_env)
        self.log.info(
            "Dagster step %r of job %r, Dagster run %s, attempt %s: runner %r, storage %r",
            request.step_key,
            request.job_name,
            request.run_id,
            request.attempt,
            resolved.runner_spec.name,
            resolved.storage_spec.name,
        )
        result = self._step_runner.run(request, run_context)
        raise_for(result, request.step_key, ti, self.log)
        self._record_asset_events(context, result.events)
        if self.mapping_keys_of:
            # What the mapped tasks downstream expand over, in the order the op yielded them.
            return result.mapping_keys.get(self.mapping_keys_of, [])
        return dict(result.outputs)

    def _record_asset_events(self, context: Context, events) -> None:
        """Give each Asset outlet's event (Airflow emits it as the task succeeds) the partition,
        metadata and checks of its Dagster materialization."""
        from airflow.sdk import Asset

        from dagster_airflow.assets import outlet_extras

        extras = outlet_extras(events)
        for outlet in self.outlets:
            if isinstance(outlet, Asset) and outlet.name in extras:
                context["outlet_events"][outlet].extra = extras[outlet.name]

    def on_kill(self) -> None:
        # Nothing to stop when Airflow kills the task before execute() started a step.
        if getattr(self, "_step_runner", None) is not None:
            self.log.info("Stopping Dagster step %r", self.dagster_step_key)
            self._step_runner.kill()
