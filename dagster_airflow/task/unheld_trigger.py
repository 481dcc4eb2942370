"""Stop a deferred step's run when a user ends its task and no triggerer holds its trigger
(Airflow side; called by the Airflow plugin's listener in the api-server).

A deferred task marked failed or succeeded stops its run through its trigger's ``on_kill``, which
the triggerer that runs the trigger calls (RemoteStepTrigger). When no live triggerer holds the
trigger (the triggerer is down or restarting, or has not picked the trigger up yet), Airflow
deletes the trigger unrun and calls nothing: the container, ECS task or Dagster run would go on
with no task left to read it. The api-server tells its listeners of the new state (of the task,
or of each deferred task of a DAG run marked failed or succeeded); this stops the run there, as
the trigger would have.

So the api-server runs the runner plugin's stop, with the task's rendered options and Airflow
connections: it reaches the Docker daemon, AWS or Dagster webserver the task named. A
deployment that keeps the api-server from those turns it off with ``[dagster_airflow]
stop_unheld_runs = False`` (docs/security.md).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

CONFIG_SECTION, CONFIG_KEY = "dagster_airflow", "stop_unheld_runs"


def stop_if_unheld(task_instance: Any) -> threading.Thread | None:
    """If ``task_instance`` (an Airflow TaskInstance whose state a user just set, with a
    ``trigger_id``: the listener checks) was deferred on a dagster-airflow trigger that no live
    triggerer runs, stop that trigger's run in a thread of its own (the api-server answers the
    user meanwhile); that thread, or None."""
    from dagster_airflow.task.airflow_compat import conf

    if not conf.getboolean(CONFIG_SECTION, CONFIG_KEY, fallback=True):
        return None
    kwargs = _unheld_trigger_kwargs(task_instance.trigger_id)
    if kwargs is None:
        return None
    name = f"dagster-airflow: stop {task_instance.task_id} of {task_instance.run_id}"
    thread = threading.Thread(target=_stop, args=(kwargs,), name=name, daemon=True)
    thread.start()
    return thread


def _unheld_trigger_kwargs(trigger_id: int) -> dict[str, Any] | None:
    """The arguments of our trigger ``trigger_id``, if no live triggerer runs it."""
    from airflow.jobs.job import Job
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    from dagster_airflow.task.trigger import RemoteStepTrigger

    ours = f"{RemoteStepTrigger.__module__}.{RemoteStepTrigger.__name__}"
    with create_session() as session:
        trigger = session.get(Trigger, trigger_id)
        if trigger is None or trigger.classpath != ours:
            return None
        if trigger.triggerer_id is not None:
            triggerer = session.get(Job, trigger.triggerer_id)
            if triggerer is not None and triggerer.is_alive():
                return None  # its on_kill stops the run
        return dict(trigger.kwargs)


def _stop(kwargs: dict[str, Any]) -> None:
    from airflow.sdk.log import redact

    from dagster_airflow.task.trigger import RemoteStepTrigger

    try:
        RemoteStepTrigger(**kwargs).stop()
    except Exception as exc:
        # Redacted here: the api-server's log lines do not go through Airflow's masker, which
        # holds the secrets the runner read (its connection's password ...).
        log.warning(
            redact(
                f"dagster-airflow could not stop the run {kwargs.get('run', {}).get('handle')} "
                "of a deferred task a user ended, which no triggerer was following; stop it by "
                f"hand: {type(exc).__name__}: {exc}"
            )
        )
