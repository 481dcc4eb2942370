"""The subprocess runner against real worker processes."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest

from dagster_airflow.model import FAILURE, SUCCESS, CodeLocation, StepRequest, StorageSpec
from dagster_airflow.runners.subprocess import SubprocessRunner
from dagster_airflow.testing.contracts import RunnerContract
from tests.conftest import JOBS

RUN_ID = "0e6f2b7c-2a1b-5e4f-8f3a-9c8b7a6d5e4f"


def request_for(step_key: str, tmp_path, run_config=None) -> StepRequest:
    return StepRequest(
        code_location=CodeLocation(python_file=str(JOBS / "trouble.py")),
        job_name="trouble",
        step_key=step_key,
        run_id=RUN_ID,
        run_config=run_config or {"ops": {"sleepy": {"config": {"pid_file": "-", "seconds": 0}}}},
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
    )


def test_a_step_succeeds_and_reports_its_output(tmp_path, task_log):
    result = SubprocessRunner().run(request_for("fine", tmp_path), {}, task_log.logger)
    assert result.status == SUCCESS
    assert result.outputs == {"result": str(tmp_path / RUN_ID / "fine" / "result")}
    assert f"Stored output 'result' at {tmp_path / RUN_ID / 'fine' / 'result'}" in task_log.text


def test_secret_env_reaches_the_worker_but_not_the_request(tmp_path):
    request = request_for("fine", tmp_path)
    env = SubprocessRunner.worker_env(request, {"AWS_SECRET_ACCESS_KEY": "hunter2"})
    assert env["AWS_SECRET_ACCESS_KEY"] == "hunter2"
    assert "hunter2" not in request.to_json()


def test_kill_stops_the_whole_process_group(tmp_path):
    pid_file = tmp_path / "pid"
    config = {"ops": {"sleepy": {"config": {"pid_file": str(pid_file), "seconds": 600}}}}
    runner = SubprocessRunner(kill_timeout=5)
    results = []
    thread = threading.Thread(
        target=lambda: results.append(
            runner.run(request_for("sleepy", tmp_path, config), {}, logging.getLogger("t"))
        )
    )
    thread.start()
    deadline = time.monotonic() + 120
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    pid = int(pid_file.read_text())

    runner.kill()
    thread.join(30)

    assert not thread.is_alive()
    assert results[0].status == FAILURE
    # Dagster turns the SIGTERM into an interruption it reports as the step's failure.
    assert results[0].error.summary() == (
        "DagsterExecutionInterruptedError: the step was stopped while it ran (SIGTERM or "
        "SIGINT: a kill or a timeout)"
    )
    try:
        os.kill(pid, 0)
        raise AssertionError(f"step process {pid} survived kill()")
    except ProcessLookupError:
        pass


def test_kill_while_the_code_location_loads_stops_the_step_at_once(tmp_path, task_log):
    pid_file = tmp_path / "pid"
    # A SIGKILL would only come after kill_timeout: the worker must end on the SIGTERM.
    runner = SubprocessRunner(env={"SLOW_IMPORT_PID_FILE": str(pid_file)}, kill_timeout=60)
    request = StepRequest(
        code_location=CodeLocation(python_file=str(JOBS / "slow_import.py")),
        job_name="slow_import",
        step_key="noop",
        run_id=RUN_ID,
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
    )
    results = []
    thread = threading.Thread(
        target=lambda: results.append(runner.run(request, {}, task_log.logger))
    )
    thread.start()
    deadline = time.monotonic() + 120
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pid_file.exists(), "the code location never started loading"

    stopped = time.monotonic()
    runner.kill()
    thread.join(90)

    assert not thread.is_alive()
    assert time.monotonic() - stopped < 30, "the worker ignored SIGTERM until SIGKILL"
    assert results[0].status == FAILURE
    assert results[0].error.class_name == "KeyboardInterrupt"
    assert (
        "Step 'noop' failed: KeyboardInterrupt: the step was stopped before it ran (SIGTERM or "
        "SIGINT: a kill or a timeout)" in task_log.text
    )
    # and the step's event log was still written next to its outputs
    assert (tmp_path / RUN_ID / "noop" / "events.jsonl").exists()


def test_kill_before_start_does_nothing():
    SubprocessRunner().kill()


def test_a_python_that_does_not_exist_is_a_clear_error(tmp_path):
    runner = SubprocessRunner(python="/no/such/python")
    try:
        runner.run(request_for("fine", tmp_path), {}, logging.getLogger("t"))
    except Exception as exc:
        assert "cannot start the step's Python '/no/such/python'" in str(exc)
    else:
        raise AssertionError("expected an error")


class TestSubprocessRunnerContract(RunnerContract):
    @pytest.fixture
    def runner_factory(self):
        return lambda: SubprocessRunner(kill_timeout=5)

    @pytest.fixture
    def storage_spec(self, tmp_path):
        return StorageSpec("filesystem", {"base_dir": str(tmp_path)})
