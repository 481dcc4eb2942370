"""A real second virtual environment for the steps, made with uv from the project's pins."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagster_airflow.testing.fixtures import step_server_runtime_dir, stop_step_servers  # noqa: F401
from dagster_airflow.testing.venv import create_venv

ROOT = Path(__file__).resolve().parents[3]  # the dagster-airflow repository


@pytest.fixture(scope="session")
def step_venv(tmp_path_factory) -> Path:
    """A virtual environment with dagster-on-airflow[dagster] only: no Airflow, no pytest."""
    venv = tmp_path_factory.mktemp("venvs") / "steps"
    return create_venv(venv, ["-e", f"{ROOT}[dagster]"], constraints=ROOT / "constraints.txt")
