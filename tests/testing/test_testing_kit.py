"""The test kit: registering a plugin for one test, and what importing the kit costs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import types

import pytest

from dagster_airflow import hookimpl
from dagster_airflow.cli import main
from dagster_airflow.errors import PluginError
from dagster_airflow.plugins.manager import get_plugins
from dagster_airflow.step_server.protocol import RUNTIME_DIR_ENV_VAR
from dagster_airflow.storage.filesystem import FilesystemStorage
from dagster_airflow.testing import plugin_registered
from dagster_airflow.testing.fixtures import register_plugin  # noqa: F401 - a fixture
from harness.airflow_deployment import AirflowDeployment


class ScratchStorage(FilesystemStorage):
    name = "scratch"


def test_a_registered_storage_class_is_there_inside_the_block_only():
    with plugin_registered(ScratchStorage) as plugins:
        assert plugins is get_plugins()
        assert get_plugins().storage("scratch").cls is ScratchStorage
    with pytest.raises(PluginError, match="storage 'scratch' is not available"):
        get_plugins().storage("scratch")


def test_it_is_removed_when_the_block_fails():
    with pytest.raises(RuntimeError), plugin_registered(ScratchStorage):
        raise RuntimeError("the test failed")
    assert "scratch" not in get_plugins().storages.backends


def test_a_plugin_module_with_hook_implementations(register_plugin):  # noqa: F811
    plugin = types.ModuleType("my_plugin")

    class MyStorage(FilesystemStorage):
        name = "mine"

    @hookimpl
    def dagster_airflow_register_storages(register):
        register(MyStorage)

    plugin.dagster_airflow_register_storages = dagster_airflow_register_storages
    plugins = register_plugin(plugin)
    assert plugins.storage("mine").plugin == "my_plugin"
    with pytest.raises(ValueError, match="a plugin named 'my_plugin' is registered already"):
        register_plugin(plugin)


def test_the_fixture_removed_what_the_previous_test_registered():
    assert "mine" not in get_plugins().storages.backends


def test_only_plugins_and_backend_classes_can_be_registered():
    with pytest.raises(TypeError, match="cannot register <class 'int'>"), plugin_registered(int):
        pass


def test_the_listing_shows_a_plugin_registered_in_code(capsys):
    with plugin_registered(ScratchStorage):
        assert main(["plugins", "--json"]) == 0
    scratch = next(
        b for b in json.loads(capsys.readouterr().out)["backends"] if b["name"] == "scratch"
    )
    assert scratch["distribution"] is None
    assert scratch["plugin"] == "tests.testing.test_testing_kit.ScratchStorage"


def test_importing_the_kit_imports_neither_pytest_nor_either_side():
    code = (
        "import sys, dagster_airflow.testing\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pytest', 'airflow', 'dagster'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


PLUGIN_AUTHORS_TEST = '''
import pytest

from dagster_airflow.model import StorageSpec
from dagster_airflow.runners.subprocess import SubprocessRunner
from dagster_airflow.testing import RunnerContract


class ConnectionReadingRunner(SubprocessRunner):
    """Reads an Airflow connection as a real runner does, so Airflow's configuration (and its
    logging, which replaces the root logger's handlers) is first imported in the middle of a
    contract test."""

    def run(self, request, context):
        import airflow.sdk  # noqa: F401

        return super().run(request, context)


class TestConnectionReadingRunner(RunnerContract):
    @pytest.fixture
    def runner_factory(self):
        return lambda: ConnectionReadingRunner(kill_timeout=5)

    @pytest.fixture
    def storage_spec(self, tmp_path):
        return StorageSpec("filesystem", {"base_dir": str(tmp_path)})
'''


def test_a_plugin_authors_contract_run_passes_when_airflow_sets_up_logging_midway(tmp_path):
    """The contract's checks of the task log hold in a fresh process with no conftest of ours,
    where the runner's first step is what imports Airflow."""
    (tmp_path / "test_my_runner.py").write_text(PLUGIN_AUTHORS_TEST)
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("PYTEST_")} | {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "-k",
            "succeeds or failing",
            "test_my_runner.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout


def test_stopping_a_deployment_fails_on_a_process_of_it_left_behind_and_ends_it(tmp_path):
    deployment = AirflowDeployment(tmp_path / "airflow")
    # A process of the deployment is one with its runtime directory in its environment.
    env = {**os.environ, RUNTIME_DIR_ENV_VAR: str(deployment.runtime_dir)}
    orphan = subprocess.Popen(["sleep", "60"], env=env, start_new_session=True)
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        with pytest.raises(RuntimeError) as raised:
            deployment.stop(grace=0)
        assert str(raised.value) == (
            f"the deployment left processes behind: {{{orphan.pid}: 'sleep 60'}}"
        )
        assert orphan.wait(10) == -signal.SIGKILL
        assert other.poll() is None
    finally:
        for process in (orphan, other):
            if process.poll() is None:
                process.kill()
                process.wait()
