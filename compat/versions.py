"""The versions `make test-compat` proves: each side's minors at their newest patch (measured on
the package index 2026-12-07), the combinations it runs, and what an older Airflow lacks.

Stdlib only: compat/run.py imports it from any Python, before any environment exists.
"""

from __future__ import annotations

# minor -> newest patch; compat/constraints-<side>-<minor>.txt pins the same patch (and the rest).
AIRFLOW = {"3.1": "3.1.8", "3.2": "3.2.2", "3.3": "3.3.2"}
DAGSTER = {"1.12": "1.12.22", "1.13": "1.13.27"}

# Every pair: the two sides never share an environment, so any Airflow runs with any Dagster.
COMBINATIONS = tuple((a, d) for a in AIRFLOW for d in DAGSTER)

# What each Airflow minor lacks that Airflow 3.3 has (dagster_airflow/task/airflow_compat.py
# says how the operator does without it). The table in docs/install.md prints these.
AIRFLOW_MISSING = {
    "3.1": "per-task `retry_policy`: a retry waits `retry_delay`, not Dagster's own delay; "
    "a DAG run a sensor triggers has no note (its tags are in `conf`)",
    "3.2": "per-task `retry_policy`: a retry waits `retry_delay`, not Dagster's own delay",
    "3.3": "nothing",
}
DAGSTER_MISSING = {"1.12": "nothing", "1.13": "nothing"}


# The columns of the table, in compat/check.py's names and order.
CHECKS = (
    "fan-in",
    "retries",
    "dynamic outputs",
    "assets with checks",
    "partitions",
    "schedules",
    "sensors",
    "team instance",
)


def combination_name(airflow: str, dagster: str) -> str:
    """ "3.1", "1.12" -> "airflow-3.1_dagster-1.12" (a results file's and a work folder's)."""
    return f"airflow-{airflow}_dagster-{dagster}"
