"""dagster-airflow: run Dagster jobs on Apache Airflow 3, one Airflow task per execution step.

Public names are imported lazily: ``import dagster_airflow`` imports neither Airflow nor Dagster,
and ``from dagster_airflow import DagsterOperator`` imports Airflow only.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    # Airflow's own, from where the installed Airflow has it (DAG files of partitioned jobs).
    "CronTriggerTimetable": "dagster_airflow.task.airflow_compat",
    "DagsterOperator": "dagster_airflow.operator",
    "DagsterSensorOperator": "dagster_airflow.task.sensor",
    "DagsterCronTimetable": "dagster_airflow.ui.timetable",
    "IntermediateIOManager": "dagster_airflow.worker.io_manager",
    "IntermediateStorage": "dagster_airflow.storage.base",
    "StepRunner": "dagster_airflow.runners.base",
    "StepRequest": "dagster_airflow.model",
    "StepResult": "dagster_airflow.model",
    "StepEvent": "dagster_airflow.model",
    "CodeLocation": "dagster_airflow.model",
    "hookimpl": "dagster_airflow.plugins",
}

__all__ = ["__version__", *_LAZY]


def get_provider_info() -> dict[str, str]:
    """Not our provider: Airflow calls this through the entry point of Dagster Labs' retired
    dagster-airflow, when it is installed under this package (dagster_airflow.distribution)."""
    from dagster_airflow.distribution import retired_provider_info

    return retired_provider_info()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dagster_airflow' has no attribute {name!r}")
