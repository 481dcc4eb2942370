"""The venv runner: the test kit's runner contract and its own behaviour.

The demo DAG scaffolded with --runner venv runs through Airflow in the project's suite
(tests/test_airflow_plugin.py), where the same run also serves the Airflow plugin's link tests.
"""

from __future__ import annotations

import logging
import subprocess

import pytest
from dagster_airflow_venv import VenvRunner

from dagster_airflow.errors import RunnerError
from dagster_airflow.model import SUCCESS, CodeLocation, StepRequest, StorageSpec
from dagster_airflow.testing import CONTRACT_JOB, RunnerContract, TaskLog, plugin_registered


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


def test_the_step_runs_with_the_venvs_python(step_venv, tmp_path):
    with TaskLog() as task_log:
        result = VenvRunner(venv=str(step_venv)).run(request(tmp_path), {}, task_log.logger)
    assert result.status == SUCCESS, result.error
    # A fresh process ("Starting .../bin/python -m dagster_airflow execute-step") or a step forked
    # by a step server that the venv's Python runs ("Started step server ... with .../python").
    assert f"{step_venv}/bin/python" in task_log.text
    # The step's venv has no Airflow: the step really ran there, not in Airflow's environment.
    probe = [str(step_venv / "bin" / "python"), "-c", "import airflow"]
    assert subprocess.run(probe, capture_output=True).returncode == 1


def test_a_missing_venv_is_one_clear_sentence(tmp_path):
    runner = VenvRunner(venv=str(tmp_path / "nowhere"))
    with pytest.raises(RunnerError) as caught:
        runner.run(request(tmp_path), {}, logging.getLogger("t"))
    assert str(caught.value) == (
        f"venv runner: there is no virtual environment at '{tmp_path / 'nowhere'}' (no "
        f"'{tmp_path / 'nowhere' / 'bin' / 'python'}'); create it with "
        f"`uv venv {tmp_path / 'nowhere'}` and install 'dagster-airflow[dagster]' and your "
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
