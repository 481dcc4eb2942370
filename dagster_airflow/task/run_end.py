"""How an Airflow DAG run ended, for its Dagster run in the team's instance (Airflow side).

The DAG's end task is a teardown downstream of every step's task: Airflow runs it once all of
them are done (retries spent), whether they succeeded or not, and its own state does not count
in the DAG run's. A teardown also runs when a user marks the DAG run failed: Airflow then fails
the running tasks, skips the pending ones and leaves the teardown to run. So the end task reads
the states of the run's tasks through Airflow's task API and judges:

- ``canceled``: a task was skipped though no task upstream of it was skipped and its own step
  did not skip (the worker marks a step Dagster skipped with the XCom ``SKIPPED_XCOM_KEY``):
  only marking the DAG run skips such a task;
- ``failure``: a task failed or its upstream did (``failed``, ``upstream_failed``);
- ``success``: every task succeeded or was skipped as Dagster skips.

Plain data goes to the step side: the worker ends the Dagster run (dagster_airflow.worker.instance).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dagster_airflow.model import RUN_CANCELED, RUN_FAILURE, RUN_SUCCESS, TAG_PREFIX

# The XCom of a task whose Dagster step was skipped (an optional output not produced upstream).
SKIPPED_XCOM_KEY = "dagster_skipped"
FAILED = ("failed", "upstream_failed")
PLAN_FINGERPRINT_TAG = f"{TAG_PREFIX}/plan_fingerprint"
# How the scaffold writes the plan's fingerprint into the DAG's doc_md (scaffold/render.py).
_FINGERPRINT = re.compile(r"Plan fingerprint: `([0-9a-f]+)`")


def plan_fingerprint_tags(doc_md: str | None) -> dict[str, str]:
    """The Dagster run's tag of the DAG's plan fingerprint, read from its docs (none where the
    docs hold none: a DAG written by hand)."""
    found = _FINGERPRINT.search(doc_md or "")
    return {PLAN_FINGERPRINT_TAG: found.group(1)} if found else {}


def task_states(ti: Any) -> dict[str, list[str]]:
    """The states of the DAG run's task instances, by task id (a mapped task: one per index)."""
    found = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
    task_ids = set(ti.task.dag.task_ids)
    states: dict[str, list[str]] = {}
    for key, state in found.items():
        # A mapped task instance is "{task_id}_{map_index}".
        task_id = key if key in task_ids else key.rsplit("_", 1)[0]
        states.setdefault(task_id, []).append(state)
    return states


def dag_run_end(ti: Any) -> str:
    """``success``, ``failure`` or ``canceled``: how the DAG run of ``ti`` (its end task) ended."""
    dag = ti.task.dag
    states = {
        task_id: found
        for task_id, found in task_states(ti).items()
        if task_id in dag.task_dict and not dag.task_dict[task_id].is_teardown
    }
    if any(_stopped(ti, dag, task_id, states) for task_id in states):
        return RUN_CANCELED
    if any(state in FAILED for found in states.values() for state in found):
        return RUN_FAILURE
    return RUN_SUCCESS


def _stopped(ti: Any, dag: Any, task_id: str, states: Mapping[str, list[str]]) -> bool:
    """Whether the task was skipped by marking the DAG run, not by Dagster or its upstream."""
    if "skipped" not in states[task_id]:
        return False
    upstream = dag.task_dict[task_id].upstream_task_ids
    if any("skipped" in states.get(up, []) for up in upstream):
        return False  # Airflow skipped it after a skipped upstream, as Dagster would
    skips = ti.xcom_pull(task_ids=task_id, key=SKIPPED_XCOM_KEY, map_indexes=None)
    return not (skips if isinstance(skips, list) else [skips] if skips else [])
