"""The test kit of dagster-airflow: what its own backends are tested with, for plugin authors.

- ``RunnerContract``, ``StorageContract``: subclass one, provide its fixtures, and your backend
  runs the same contract tests as the built-ins.
- ``TaskLog``: the logger a test hands a runner as its task log, read back through a handler of
  its own (not pytest's caplog, which Airflow's logging setup may cut off).
- ``run_context_for``: the RunContext a runner driven directly takes (the request's storage,
  Airflow's connections and masking), as the operator builds it for a task; ``run_step``
  runs a step with it.
- ``plugin_registered`` (a context manager) and the ``register_plugin`` pytest fixture: register a
  plugin for one test, and always remove it.
- ``step_server_runtime_dir``, ``stop_step_servers`` (pytest fixtures, autouse once imported into
  a conftest.py): the session's step servers listen in a directory of its own, and each test
  stops the ones its steps started.
- ``AirflowHome``: a throwaway Airflow 3 on SQLite, to run a DAG with ``airflow dags test``.
- ``compare_job``: run a job through a real Airflow and through Dagster itself, and get a
  ``Comparison`` listing every difference in step outcomes, attempts, outputs, hooks,
  materializations and asset checks (see docs/semantics.md).
- ``create_venv``: a real virtual environment (uv) for steps to run in.

The project's own harness (deployments, podman, a browser, moto and ECS helpers) is not shipped:
it lives in the repository's top-level ``harness/`` folder.

Names are imported lazily: importing this package imports neither pytest nor Airflow.
"""

from importlib import import_module
from typing import Any

_LAZY = {
    "RunnerContract": "dagster_airflow.testing.contracts",
    "StorageContract": "dagster_airflow.testing.contracts",
    "CONTRACT_JOB": "dagster_airflow.testing.contracts",
    "TaskLog": "dagster_airflow.testing.task_log",
    "run_context_for": "dagster_airflow.testing.run_context",
    "run_step": "dagster_airflow.testing.run_context",
    "plugin_registered": "dagster_airflow.testing.plugins",
    "register_plugin": "dagster_airflow.testing.fixtures",
    "step_server_runtime_dir": "dagster_airflow.testing.fixtures",
    "stop_step_servers": "dagster_airflow.testing.fixtures",
    "AirflowHome": "dagster_airflow.testing.airflow_home",
    "DagRunResult": "dagster_airflow.testing.airflow_home",
    "compare_job": "dagster_airflow.testing.compare",
    "Comparison": "dagster_airflow.testing.compare",
    "create_venv": "dagster_airflow.testing.venv",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dagster_airflow.testing' has no attribute {name!r}")
