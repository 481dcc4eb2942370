"""What a DagsterOperator does in the Airflow worker: run its step (or defer it to the
triggerer, and resume), report its lineage, stop it on a kill, and retry as Dagster would.
Imported with the operator; what each method needs is imported when it runs, not at parse."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dagster_airflow.task.airflow_compat import HAS_RETRY_POLICY

if TYPE_CHECKING:
    from airflow.sdk import Context


class StepTask:
    """Mixed into DagsterOperator, before BaseOperator: the task at run time."""

    @property
    def retry_policy(self) -> Any:
        """The task's Airflow retry policy: the one it was given, else `DagsterRetryPolicy`
        (None before Airflow 3.3, which has no per-task policy). Built on first use: the DAG
        processor builds every task at each parse and never evaluates one, and the policy's
        module (Airflow's and ours) would be imported with every DAG file."""
        given = self.__dict__.get("_given_retry_policy")
        if given is not None or not HAS_RETRY_POLICY:
            return given
        if "_dagster_retry_policy" not in self.__dict__:
            from dagster_airflow.task.outcome import DagsterRetryPolicy

            policy = DagsterRetryPolicy(dagster_only=self.dagster_retries_only)
            self.__dict__["_dagster_retry_policy"] = policy
        return self.__dict__["_dagster_retry_policy"]

    @retry_policy.setter
    def retry_policy(self, value: Any) -> None:
        # BaseOperator.__init__ sets it (None where not given); so does a deep copy.
        self.__dict__["_given_retry_policy"] = value

    @property
    def has_retry_policy(self) -> bool:
        # What Airflow serializes for the task: told without building the policy.
        return HAS_RETRY_POLICY or self.__dict__.get("_given_retry_policy") is not None

    @property
    def dagster_step_key(self) -> str:
        """The Dagster step this task instance runs: ``op[piece_3]`` for a mapped step."""
        if self.mapping_key is None:
            return self.step_key
        return f"{self.step_key.removesuffix('[?]')}[{self.mapping_key}]"

    def execute(self, context: Context) -> dict[str, str] | list[str]:
        # Imported here, not at module level: the DAG processor never needs them.
        from dagster_airflow.distribution import retired_package_problem
        from dagster_airflow.task.deferral import defer_step, defers
        from dagster_airflow.task.step_end import end_of_step
        from dagster_airflow.task.step_request import step_to_run

        if retired_package_problem():
            self.log.warning("%s", retired_package_problem())
        self._take_dag_defaults()  # a task executed without rendering its templates
        step = step_to_run(self, context)
        self._step_runner = step.runner
        request, resolved = step.request, step.resolved
        self.log.info(
            "Dagster step %r of job %r, Dagster run %s, attempt %s: runner %r, storage %r",
            request.step_key,
            request.job_name,
            request.run_id,
            request.attempt,
            resolved.runner_spec.name,
            resolved.storage_spec.name,
        )
        if defers(self, step.runner):  # returns only for a step killed before it started
            result = defer_step(self, context, step)
        else:
            result = step.runner.run(request, step.run_context)
        return end_of_step(self, context, request, result)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """A deferred step's end (dagster_airflow.task.deferral): its result, as ``execute``."""
        from dagster_airflow.task.deferral import resume_step
        from dagster_airflow.task.step_end import end_of_step

        self._take_dag_defaults()
        step, result = resume_step(self, context, event)
        return end_of_step(self, context, step.request, result)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The step's lineage for Airflow's OpenLineage provider: what it read and wrote, and
        the Dagster job and op (dagster_airflow.task.lineage); None before a step ran."""
        lineage = getattr(self, "step_lineage", None)
        if lineage is None:
            return None
        from dagster_airflow.task.lineage import operator_lineage

        return operator_lineage(lineage)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self.get_openlineage_facets_on_complete(task_instance)

    def on_kill(self) -> None:
        # Nothing to stop when Airflow kills the task before execute() started a step.
        if getattr(self, "_step_runner", None) is not None:
            self.log.info("Stopping Dagster step %r", self.dagster_step_key)
            self._step_runner.kill()
