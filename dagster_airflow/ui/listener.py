"""The Airflow plugin's listener: the scheduler imports what dagster-airflow's tasks need before
it forks the processes that run them (Airflow side; see dagster_airflow.task.preload).

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
