"""Airflow names for Dagster things: the task id of a step, the group id of a mapped output.

The scaffold writes them into the DAG file, and the UI finds a step's task by them: both sides
name tasks the same way.
"""

from __future__ import annotations

import hashlib
import re

_TASK_ID_BAD = re.compile(r"[^\w.-]")
_GROUP_ID_BAD = re.compile(r"[^\w-]")


def task_id_for(step_key: str) -> str:
    """An Airflow task id for a Dagster step key (Airflow allows letters, digits, _ . -, at
    most 250 characters).

    A mapped step ``op[?]`` is the task ``op``; its task instances carry the mapping keys. A key
    that had to be changed or cut ends in a short hash of the whole key, so two keys that differ
    only in what was changed or cut stay two tasks, and a key keeps its id whatever else the job
    holds.
    """
    return _safe_id(step_key.removesuffix("[?]"), _TASK_ID_BAD, 250)


def group_id_for(producer: str, output: str) -> str:
    """The id of the mapped task group over a dynamic output (Airflow allows letters, digits,
    _ and -, at most 200 characters)."""
    return _safe_id(f"{producer.removesuffix('[?]')}-{output}", _GROUP_ID_BAD, 200)


def _safe_id(name: str, bad: re.Pattern, length: int) -> str:
    cleaned = bad.sub("_", name)
    if cleaned == name and len(name) <= length:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned[: length - 9]}-{digest}"
