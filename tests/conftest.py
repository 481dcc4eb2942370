"""Fixtures that run the real components: a real Airflow on SQLite, the real CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dagster_airflow.testing.airflow_home import AirflowHome

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
JOBS = Path(__file__).resolve().parent / "jobs"
CLI = str(Path(sys.executable).parent / "dagster-airflow")


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory) -> AirflowHome:
    """One migrated Airflow home for the session; each test installs its own DAG files."""
    home = AirflowHome(tmp_path_factory.mktemp("airflow"))
    home.migrate()
    return home


def run_cli(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    """The `dagster-airflow` command as a user runs it."""
    return subprocess.run(
        [CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )


def scaffold(*args: str, **kwargs) -> str:
    done = run_cli("scaffold", *args, **kwargs)
    assert done.returncode == 0, done.stderr
    return done.stdout
