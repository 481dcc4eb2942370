"""The venv runner: the test kit's runner contract and its own behaviour.

The demo DAG scaffolded with --runner venv runs through Airflow in the project's suite
(tests/ui/test_airflow_plugin.py), where the same run also serves the Airflow plugin's link tests.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest
from dagster_airflow_venv import VenvRunner

from dagster_airflow.errors import RunnerError
from dagster_airflow.model import CodeLocation, StepRequest, StorageSpec
from dagster_airflow.step_result import SUCCESS
from dagster_airflow.step_server.protocol import running_servers
from dagster_airflow.testing import CONTRACT_JOB, RunnerContract, TaskLog, plugin_registered
from dagster_airflow.testing.run_context import run_step


class TestVenvRunnerContract(RunnerContract):
    step_timeout = 100.0  # seconds a contract step may take, start-up included
    kills_before_start = True

    @pytest.fixture
    def runner_factory(self, step_venv):
        return lambda: VenvRunner(venv=str(step_venv), kill_timeout=5)

    @pytest.fixture
    def storage_spec(self, tmp_path):
        return StorageSpec("filesystem", {"base_dir": str(tmp_path)})


def request(tmp_path) -> StepRequest:
    return StepRequest(
        code_location=CodeLocation(python_file=str(CONTRACT_JOB)),
        job_name="contract",
        step_key="produce",
        run_id="6f0d8c2e-1b7a-5f3e-9d4c-2a1b0c9d8e7f",
        run_config={"ops": {"slow": {"config": {"seconds": 0}}}},
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
    )


def test_a_warm_step_is_forked_by_a_step_server_of_the_venvs_python(
    step_venv, tmp_path, step_server_runtime_dir
):
    python = f"{step_venv}/bin/python"
    servers, texts = set(), []
    for _ in range(2):
        with TaskLog() as task_log:
            result = run_step(VenvRunner(venv=str(step_venv)), request(tmp_path), task_log.logger)
        assert result.status == SUCCESS, result.error
        assert "Step server unavailable" not in task_log.text
        texts.append(task_log.text)
        servers.update(
            int(m.rstrip(")").split()[-1])
            for m in task_log.messages
            if "forked by step server" in m
        )
    assert f"with {python} in" in texts[0]  # the first step started the server
    # One server for the two steps, and it is the venv's Python that runs it: the steps, its
    # forks, have the venv's packages (no Airflow) and not the Airflow worker's.
    (server,) = running_servers(step_server_runtime_dir)
    assert servers == {server.pid}
    assert server.info["python"] == python
    assert Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")[0] == python.encode()
    assert "VIRTUAL_ENV=" + str(step_venv) in Path(f"/proc/{server.pid}/environ").read_text()
    assert_the_venv_has_no_airflow(step_venv)


def test_warm_false_runs_each_step_in_a_fresh_process_of_the_venvs_python(
    step_venv, tmp_path, step_server_runtime_dir
):
    with TaskLog() as task_log:
        runner = VenvRunner(venv=str(step_venv), warm=False)
        result = run_step(runner, request(tmp_path), task_log.logger)
    assert result.status == SUCCESS, result.error
    assert f"Starting {step_venv}/bin/python -m dagster_airflow execute-step" in task_log.text
    assert "forked by step server" not in task_log.text
    assert running_servers(step_server_runtime_dir) == []


def test_the_step_server_options_are_checked_as_the_subprocess_runners(step_venv):
    from dagster_airflow.plugins.manager import check_options, get_plugins

    options = {"venv": str(step_venv), "warm": False, "idle_timeout": 5, "runtime_dir": "/r"}
    check_options("runner", "venv", VenvRunner, options)
    runner = get_plugins().runner("venv").create(options)
    assert (runner.warm, runner.idle_timeout, runner.runtime_dir) == (False, 5, "/r")
    with pytest.raises(Exception, match="option 'warm' must be true or false, got 'no'"):
        VenvRunner(venv=str(step_venv), warm="no")


def assert_the_venv_has_no_airflow(step_venv) -> None:
    probe = [str(step_venv / "bin" / "python"), "-c", "import airflow"]
    assert subprocess.run(probe, capture_output=True).returncode == 1


def test_a_missing_venv_is_one_clear_sentence(tmp_path):
    runner = VenvRunner(venv=str(tmp_path / "nowhere"))
    with pytest.raises(RunnerError) as caught:
        run_step(runner, request(tmp_path), logging.getLogger("t"))
    assert str(caught.value) == (
        f"venv runner: there is no virtual environment at '{tmp_path / 'nowhere'}' (no "
        f"'{tmp_path / 'nowhere' / 'bin' / 'python'}'); create it with "
        f"`uv venv {tmp_path / 'nowhere'}` and install 'dagster-on-airflow[dagster]' and your "
        "job's dependencies into it."
    )


def test_a_wrong_venv_option_is_one_sentence():
    from dagster_airflow.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as caught:
        VenvRunner(venv=42)
    assert str(caught.value) == (
        "the venv runner's option 'venv' must be a non-empty string, got 42; write it as "
        "venv=/opt/venvs/etl."
    )


def test_the_entry_point_registers_it_and_the_test_kit_can_too():
    from dagster_airflow.plugins.manager import get_plugins

    assert get_plugins().runner("venv").cls is VenvRunner  # installed: found by entry point

    class OtherVenvRunner(VenvRunner):
        name = "venv2"

    with plugin_registered(OtherVenvRunner) as plugins:
        assert plugins.runner("venv2").cls is OtherVenvRunner
    with pytest.raises(Exception, match="runner 'venv2' is not available"):
        get_plugins().runner("venv2")
