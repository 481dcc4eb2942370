"""Fixtures that run the real components: a real Airflow on SQLite, the real CLI."""

from __future__ import annotations

import atexit
import functools
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dagster_airflow.testing.airflow_home import AirflowHome
from dagster_airflow.testing.fixtures import (  # noqa: F401
    step_server_runtime_dir,
    stop_step_servers,
    task_log,
)
from dagster_airflow.testing.warm_command import WarmCommand
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


@pytest.fixture(autouse=True)
def sigterm_not_ignored():
    """No test starts with SIGTERM ignored.

    Dagster's in-process execution maps SIGTERM to SIGINT's handler
    (dagster._utils.interrupts.setup_interrupt_handlers), and an xdist worker ignores SIGINT: so
    after a test that ran Dagster in-process, SIGTERM is ignored in the worker. A process a
    test starts inherits that (the disposition survives exec), so a step that a runner under
    test stops with SIGTERM would run on: in a full run, the kill tests of later files waited on
    a 600 s step. Its default is put back before each test.
    """
    if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory) -> Iterator[AirflowHome]:
    """One migrated Airflow home for the session; each test installs its own DAG files."""
    home = AirflowHome(tmp_path_factory.mktemp("airflow"))
    home.migrate()
    yield home
    home.close()


DEPLOYMENT = "airflow_deployment"
_DEPLOYMENT_KEY = pytest.StashKey[AirflowDeployment]()


@pytest.fixture(scope="session")
def airflow_deployment(request, tmp_path_factory) -> AirflowDeployment:
    """One real deployment for the session (scheduler, DAG processor, api-server, triggerer,
    LocalExecutor on SQLite): its tests share it, each with DAG ids and run ids of its own.
    Stopping it fails if any of its processes (a step server, a step) is left behind.

    Under `make test` its files (DEPLOYMENT_FILES) run one after another on one worker, and it
    stops after the last of them (pytest_runtest_teardown below): four idle servers would
    otherwise take CPU from every test after them."""
    path = tmp_path_factory.mktemp("deployment")
    with AirflowDeployment(path, port=servers.free_port()) as airflow:
        request.config.stash[_DEPLOYMENT_KEY] = airflow
        yield airflow


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """A test of the deployment after it was stopped early (a file that uses it but is not in
    DEPLOYMENT_FILES, run later on the same worker) starts it again."""
    deployment = item.config.stash.get(_DEPLOYMENT_KEY, None)
    if deployment is not None and DEPLOYMENT in item.fixturenames and not deployment.running:
        deployment.start()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Under `make test`, stop the deployment once its files are done (after the module
    fixtures that used it are torn down); in one process, at the session's end."""
    yield
    deployment = item.config.stash.get(_DEPLOYMENT_KEY, None)
    if (
        hasattr(item.config, "workerinput")
        and deployment is not None
        and deployment.running
        and nextitem is not None
        and _file_of(nextitem.nodeid) not in DEPLOYMENT_FILES
        and DEPLOYMENT not in nextitem.fixturenames
    ):
        deployment.stop()


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
    """The `dagster-airflow` command as a user runs it: a process of its own, forked from a
    server of this worker that imported Dagster once (testing/warm_command.py), or a fresh one
    when the environment is not the server's."""
    call_env = dict(os.environ if env is None else env)
    warm = _warm_cli()
    if warm.accepts(call_env):
        done = warm.run(list(args), call_env, timeout=1800, cwd=str(cwd))
        if done is not None:
            return done
    return subprocess.run(
        [CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )


@functools.cache
def _warm_cli() -> WarmCommand:
    """This worker's server of the command, started at the first command."""
    log = Path(tempfile.mkdtemp(prefix="warm-cli-")) / "server.log"
    warm = WarmCommand(sys.executable, dict(os.environ), log, "dagster-airflow")
    atexit.register(warm.close)
    return warm


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
# a Dagster deployment), by path from the repository's root, longest first, as the suite
# measured them. Under `make test`'s workers, which take whole files in collection order,
# they start first: one of them started last would keep one worker busy for minutes while the
# others sit idle. A new file of that kind goes here.
DEPLOYMENT_FILES = (
    "tests/e2e/test_deployment_local.py",
    "tests/e2e/test_rest_scheduling.py",
    "tests/ui/test_step_view_auth.py",
    "tests/ui/test_ui_browser.py",
    "tests/e2e/test_dagster_instance_deployment.py",
    "tests/e2e/test_deferral_deployment.py",
)
LONG_FILES = (
    *DEPLOYMENT_FILES,  # one unit of work: see pytest_xdist_make_scheduler
    "tests/e2e/test_wheel_install.py",
    "tests/runners/test_graphql.py",
    "tests/runners/test_docker.py",
    "tests/step_server/test_step_server.py",
    "tests/e2e/test_e2e_scheduling.py",
    "tests/ui/test_step_view.py",
    "tests/e2e/test_semantics.py",
    "tests/runners/test_ecs.py",
    "tests/e2e/test_deployment_celery.py",
    "examples/dagster-airflow-venv/tests/test_venv_runner.py",
    "tests/runners/test_reaper.py",
    "tests/e2e/test_secrets.py",
    "tests/e2e/test_e2e_dynamic.py",
    "tests/e2e/test_readme_walkthrough.py",
    "tests/task/test_retry_gate.py",
    "tests/worker/test_asset_partitions.py",
    "tests/e2e/test_sensor_dags.py",
    "tests/scaffold/test_scaffold_all.py",
    "tests/e2e/test_dagster_instance.py",
    "tests/scaffold/test_scaffold_schedules.py",
)


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_configure(config):
    """A name in LONG_FILES that is no file (a bare file name, a renamed file) would order
    nothing, silently: say so at once."""
    missing = [name for name in LONG_FILES if not (ROOT / name).is_file()]
    if missing:
        raise pytest.UsageError(
            f"tests/conftest.py: LONG_FILES names no file at {missing!r}; write each as its "
            "path from the repository's root (tests/e2e/test_x.py)."
        )


def pytest_collection_modifyitems(config, items):
    """In a pytest-xdist worker, the long files first (see LONG_FILES); alone or in one process
    (make test-reverse), the order stays the one asked for."""
    if not hasattr(config, "workerinput"):
        return
    rank = {name: index for index, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(_file_of(item.nodeid), len(rank)))


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: unknown under -p no:xdist
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, with the files of the session's deployment as one unit: one worker
    runs them all, one deployment serves them (each file on a worker of its own would start
    one per worker)."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class DeploymentTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = _file_of(nodeid)
            return DEPLOYMENT if path in DEPLOYMENT_FILES else path

    return DeploymentTogether(config, log)
