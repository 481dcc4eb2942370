"""The Airflow plugin's listener (Airflow side): the scheduler imports what dagster-airflow's
tasks need before it forks the processes that run them (dagster_airflow.task.preload), and the
api-server stops the run of a deferred task a user marks failed or succeeded when no triggerer
holds its trigger (dagster_airflow.task.unheld_trigger).

Airflow calls ``on_starting`` as each of its jobs starts (scheduler, triggerer, DAG processor),
before it knows which job it is, and in each task's own process. Every job preloads: the
scheduler's LocalExecutor forks the task processes, and the modules cost the others little
(about 1.5 MiB and 40 ms of CPU, once). A task's own process does not preload: it imports what
it needs as it runs. Nothing this does can stop a job: a failure is one line in its log, and
each task imports what it needs as before.
"""

from __future__ import annotations

import logging
from typing import Any

import pluggy

log = logging.getLogger(__name__)

# Airflow's listener hooks (airflow.listeners.hookimpl): its plugin manager's project name.
hookimpl = pluggy.HookimplMarker("airflow")

# The class Airflow's jobs call the hook with (airflow.jobs.job.Job); a task's process calls it
# with another (the task runner's marker).
JOB_CLASS = "Job"


@hookimpl
def on_starting(component: Any) -> None:
    if type(component).__name__ != JOB_CLASS:
        return
    try:
        from dagster_airflow.task.preload import preload
        from dagster_airflow.ui import links  # noqa: F401  (computed as each task ends)

        preload()
    except Exception as exc:
        log.warning(
            "dagster-airflow could not import its task modules ahead of the tasks, so each "
            "task imports them itself: %s: %s",
            type(exc).__name__,
            exc,
        )


# A user set a task's state (the api-server calls these, the TaskInstance in hand; so do a task's
# own process and the scheduler, with an instance that was not deferred or holds no trigger).
@hookimpl
def on_task_instance_failed(task_instance: Any) -> None:
    _stop_if_unheld(task_instance)


@hookimpl
def on_task_instance_success(task_instance: Any) -> None:
    _stop_if_unheld(task_instance)


def _stop_if_unheld(task_instance: Any) -> None:
    # Not deferred, or a task's own process at its end (its instance has no trigger_id):
    # nothing more, not even an import.
    if getattr(task_instance, "trigger_id", None) is None:
        return
    try:
        from dagster_airflow.task.unheld_trigger import stop_if_unheld

        stop_if_unheld(task_instance)
    except Exception as exc:
        log.warning(
            "dagster-airflow could not check whether the deferred task %s had a run to stop: "
            "%s: %s",
            getattr(task_instance, "task_id", "?"),
            type(exc).__name__,
            exc,
        )
