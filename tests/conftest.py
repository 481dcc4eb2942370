"""Fixtures that run the real components: a real Airflow on SQLite, the real CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dagster_airflow.testing.airflow_home import AirflowHome
from dagster_airflow.testing.fixtures import (  # noqa: F401
    step_server_runtime_dir,
    stop_step_servers,
    task_log,
)
from harness import servers
from harness.airflow_deployment import AirflowDeployment
from harness.browser import AirflowBrowser

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
JOBS = Path(__file__).resolve().parent / "jobs"
CLI = str(Path(sys.executable).parent / "dagster-airflow")


@pytest.fixture(scope="session", autouse=True)
def airflow_configured(tmp_path_factory):
    """Airflow's configuration, imported once before any test, from a home of its own.

    The first import of Airflow's configuration in a process (a runner reading a connection or
    masking a secret) sets up Airflow's logging, replacing the root logger's handlers, and reads
    ~/airflow unless AIRFLOW_HOME says otherwise. Settled here, no test depends on which tests
    ran before it, and none touches ~/airflow. Tests read what reached a task log through the
    kit's TaskLog, which does not depend on this.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow-of-the-tests")))
        patch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        import airflow.sdk  # noqa: F401


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory) -> AirflowHome:
    """One migrated Airflow home for the session; each test installs its own DAG files."""
    home = AirflowHome(tmp_path_factory.mktemp("airflow"))
    home.migrate()
    return home


@pytest.fixture(scope="session")
def airflow_deployment(tmp_path_factory) -> AirflowDeployment:
    """One real deployment for the session (scheduler, DAG processor, api-server, triggerer,
    LocalExecutor on SQLite): its tests share it, each with DAG ids and run ids of its own.
    Stopping it fails if any of its processes (a step server, a step) is left behind."""
    path = tmp_path_factory.mktemp("deployment")
    with AirflowDeployment(path, port=servers.free_port()) as airflow:
        yield airflow


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """A moto server (S3, ECS, IAM, logs) on loopback for the session: "http://127.0.0.1:PORT".

    It accepts any credentials (servers.MOTO_CREDENTIALS). Tests pass them to clients explicitly
    or set them with monkeypatch, never for the session, so no AWS variable leaks into another
    test's subprocesses (an Airflow run must get its credentials from its connection).
    """
    with servers.moto_server(log_path=tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory):
    """gcp-storage-emulator on loopback for the session: "http://127.0.0.1:PORT", the value of
    STORAGE_EMULATOR_HOST."""
    log_path = tmp_path_factory.mktemp("gcs") / "emulator.log"
    with servers.gcs_emulator_server(log_path=log_path) as url:
        yield url


def run_cli(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    """The `dagster-airflow` command as a user runs it."""
    return subprocess.run(
        [CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )


def scaffold(*args: str, **kwargs) -> str:
    done = run_cli("scaffold", *args, **kwargs)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that drove a browser keeps a screenshot of the page at the failure, and
    its report says where (see harness.browser)."""
    report = yield
    browser = getattr(item, "funcargs", {}).get("browser")
    if report.when == "call" and report.failed and isinstance(browser, AirflowBrowser):
        report.sections.append(("screenshots", browser.screenshot_failure(item.name)))
    return report


# The files that take minutes each (a deployment, a browser, a virtual environment, containers,
# a Dagster deployment), longest first, as the suite measured them. Under `make test`'s two
# workers, which take whole files in collection order, they start first: one of them started
# last would keep one worker busy for minutes while the other sits idle.
LONG_FILES = (
    "test_graphql.py",
    "test_docker.py",
    "test_step_server.py",
    "test_e2e_scheduling.py",
    "test_step_view.py",
    "test_semantics.py",
    "test_ecs.py",
    "test_deployment_local.py",
    "test_rest_scheduling.py",
    "test_step_view_auth.py",
    "test_ui_browser.py",
    "test_deployment_celery.py",
    "test_venv_runner.py",
    "test_e2e_dynamic.py",
    "test_readme_walkthrough.py",
    "test_scaffold_schedules.py",
)


def pytest_collection_modifyitems(config, items):
    """In a pytest-xdist worker, the long files first (see LONG_FILES); alone or in one process
    (make test-reverse), the order stays the one asked for."""
    if not hasattr(config, "workerinput"):
        return
    rank = {name: index for index, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
