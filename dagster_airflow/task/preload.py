"""What a DagsterOperator task imports when it runs, imported ahead of it (Airflow side).

Airflow's LocalExecutor forks each task's process from one of its worker processes, which the
scheduler forks as it starts, after it loaded Airflow's plugins. What the scheduler imported by
then, every task process has without importing it: dagster-airflow's Airflow plugin calls
`preload` there (dagster_airflow.ui.listener), so that a task's ``execute`` finds its modules
imported and the backends' plugin manager built. Each task saved what that cost: attrs building
the model's and the runners' classes, and the scan of the installed distributions for
third-party backends (docs/performance.md).

As with Airflow's own plugins, a third-party backend installed after the scheduler started is
seen by its tasks once the scheduler restarts.
"""

from __future__ import annotations


def preload() -> None:
    """Import what ``DagsterOperator.execute`` imports, build the plugin manager, and register
    every built-in runner and storage (their modules are small: none imports a client library
    before a step uses it). A third-party backend that fails to load raises here; the task
    that names one reports it as it always did."""
    import dagster_airflow.distribution
    import dagster_airflow.task.deferral
    import dagster_airflow.task.outcome
    import dagster_airflow.task.step_end
    import dagster_airflow.task.step_request  # noqa: F401
    from dagster_airflow.plugins.manager import get_plugins

    get_plugins().load_builtins()
