"""What a DagsterOperator takes from its DAG (the Airflow worker, and the DAG processor at
parse): the job-wide settings a scaffolded DAG keeps once, in its ``default_args`` and
``user_defined_macros``, rather than once per task, and how they are rendered and masked as the
task's own."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Context

# The template fields a task takes from the DAG's default_args (DEFAULT_ARGS) unless it has its own.
JOB_WIDE = ("run_config", "runner", "storage", "environment")
# What a task takes from the DAG's user_defined_macros where default_args lacks it: a scaffolded
# DAG keeps its run config there, which Airflow does not serialize (the trigger form holds it).
FROM_MACROS = ("run_config", "run_config_schema")


class DagSettings:
    """Mixed into DagsterOperator, before BaseOperator: a task's settings, its own or its DAG's."""

    def _dag_default(self, name: str) -> Any:
        if not self.has_dag():
            return None
        found = self.dag.default_args.get(name)
        if found is None and name in FROM_MACROS:
            found = (self.dag.user_defined_macros or {}).get(name)
        return found

    def setting(self, name: str) -> Any:
        """The task's ``run_config``, ``runner``, ``storage`` or ``run_config_schema``: its own,
        else the DAG's default_args one (a run config and its schema: else the DAG's
        user_defined_macros one), as written (templates not rendered)."""
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
        if self.environment_source is None:
            self.environment_source = copy.deepcopy(self.environment)

    def _do_render_template_fields(self, parent, template_fields, context, jinja_env, seen_oids):
        # Airflow renders a task (mapped or not) through this method: the DAG's values are
        # rendered, and shown among the task's rendered templates, as the task's own would be.
        if parent is self:
            self._take_dag_defaults()
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)
        if parent is self:
            from dagster_airflow.task.context import mask_templated

            # A mapped task's rendering comes here, not through render_template_fields below:
            # the job's variables are masked before Airflow records its rendered fields.
            mask_templated(self.environment, self.environment_source)

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        super().render_template_fields(context, jinja_env)
        from dagster_airflow.task.context import mask_templated

        # Now, before Airflow records the rendered fields for its "Rendered Template" view.
        mask_templated(self.runner, self.runner_source)
        mask_templated(self.environment, self.environment_source)
