"""The subprocess runner against real worker processes."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from dagster_airflow.model import CodeLocation, StepRequest, StorageSpec
from dagster_airflow.runners.subprocess import SubprocessRunner
from dagster_airflow.step_result import FAILURE, SUCCESS, StepResult
from dagster_airflow.testing.contracts import RunnerContract
from dagster_airflow.testing.run_context import run_context_for, run_step
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


def run_and_kill_once_started(
    runner, request: StepRequest, pid_file, logger
) -> tuple[StepResult, float]:
    """Run the step in a thread, kill the runner once the step wrote ``pid_file``; the result,
    and the seconds from the kill to the end (a kill that stops nothing fails here)."""
    results = []
    thread = threading.Thread(
        target=lambda: results.append(runner.run(request, run_context_for(request, logger)))
    )
    thread.start()
    deadline = time.monotonic() + 120
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pid_file.exists(), "the step never started"
    killed = time.monotonic()
    runner.kill()
    thread.join(90)
    assert not thread.is_alive(), "the step was never stopped"
    return results[0], time.monotonic() - killed


def test_a_step_succeeds_and_reports_its_output(tmp_path, task_log):
    result = run_step(SubprocessRunner(), request_for("fine", tmp_path), task_log.logger)
    assert result.status == SUCCESS
    assert result.outputs == {"result": str(tmp_path / RUN_ID / "fine" / "result")}
    assert f"Stored output 'result' at {tmp_path / RUN_ID / 'fine' / 'result'}" in task_log.text


def test_secret_env_reaches_the_worker_but_not_the_request(tmp_path):
    request = request_for("fine", tmp_path)
    env = SubprocessRunner.worker_env(request, {"AWS_SECRET_ACCESS_KEY": "hunter2"})
    assert env["AWS_SECRET_ACCESS_KEY"] == "hunter2"
    assert "hunter2" not in request.to_json()


def test_kill_stops_the_whole_process_group(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    pid_file = tmp_path / "pid"
    config = {"ops": {"sleepy": {"config": {"pid_file": str(pid_file), "seconds": 600}}}}
    runner = SubprocessRunner(kill_timeout=5)
    results = []
    thread = threading.Thread(
        target=lambda: results.append(
            run_step(runner, request_for("sleepy", tmp_path, config), logging.getLogger("t"))
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
    # One clear line, no traceback (Dagster re-raises the interruption after reporting it), and
    # the step's event log, ending with its failure, is written next to its outputs.
    assert "Traceback" not in caplog.text and "stack trace" not in caplog.text
    stopped = [r for r in caplog.records if "stopped while it ran" in r.getMessage()]
    assert [r.levelname for r in stopped] == ["ERROR"]
    assert "\n" not in stopped[0].getMessage()
    events = (tmp_path / RUN_ID / "sleepy" / "events.jsonl").read_text().splitlines()
    assert '"dagster_airflow_event": "STEP_FAILURE"' in events[-1]
    try:
        os.kill(pid, 0)
        raise AssertionError(f"step process {pid} survived kill()")
    except ProcessLookupError:
        pass


def test_kill_while_the_code_location_loads_stops_the_step_at_once(tmp_path, task_log):
    pid_file = tmp_path / "pid"
    # A SIGKILL would only come after kill_timeout: the worker must end on the SIGTERM. (A fresh
    # process: with a step server the code location loads in the server, before any step.)
    runner = SubprocessRunner(
        env={"SLOW_IMPORT_PID_FILE": str(pid_file)}, kill_timeout=60, warm=False
    )
    request = StepRequest(
        code_location=CodeLocation(python_file=str(JOBS / "slow_import.py")),
        job_name="slow_import",
        step_key="noop",
        run_id=RUN_ID,
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
    )
    result, seconds = run_and_kill_once_started(runner, request, pid_file, task_log.logger)

    assert seconds < 30, "the worker ignored SIGTERM until SIGKILL"
    assert result.status == FAILURE
    assert result.error.class_name == "KeyboardInterrupt"
    assert (
        "Step 'noop' failed: KeyboardInterrupt: the step was stopped before it ran (SIGTERM or "
        "SIGINT: a kill or a timeout)" in task_log.text
    )
    # and the step's event log was still written next to its outputs
    assert (tmp_path / RUN_ID / "noop" / "events.jsonl").exists()


def test_a_stop_the_code_location_swallows_while_it_loads_still_stops_the_step(tmp_path, task_log):
    # The module catches everything around its slow import, the stop's KeyboardInterrupt too:
    # the worker remembers the stop and never runs the step after it.
    pid_file, ran = tmp_path / "pid", tmp_path / "ran"
    runner = SubprocessRunner(
        env={"SLOW_IMPORT_PID_FILE": str(pid_file), "RAN_FILE": str(ran)},
        kill_timeout=60,
        warm=False,
    )
    request = StepRequest(
        code_location=CodeLocation(python_file=str(JOBS / "swallowing_import.py")),
        job_name="swallowing_import",
        step_key="noop",
        run_id=RUN_ID,
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
    )
    result, _ = run_and_kill_once_started(runner, request, pid_file, task_log.logger)

    assert not ran.exists(), "the step ran after it was stopped"
    assert result.status == FAILURE
    assert result.error.class_name == "KeyboardInterrupt"
    assert "the step was stopped before it ran" in task_log.text


def test_a_worker_started_with_sigint_ignored_still_stops_on_sigterm_in_dagsters_hands():
    # A process started in the background inherits SIGINT ignored, and Dagster maps SIGTERM to
    # SIGINT's handler whenever its execution sets or restores its own (setup_interrupt_handlers).
    script = (
        "import signal\n"
        "from dagster_airflow.worker import interrupts\n"
        "from dagster._utils.interrupts import capture_interrupts\n"
        "interrupts.install()\n"
        "with capture_interrupts():\n"
        "    pass\n"
        "print(signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert done.stdout.strip() == "True", done.stderr


def test_kill_before_start_does_nothing():
    SubprocessRunner().kill()


def test_a_python_that_does_not_exist_is_a_clear_error(tmp_path):
    runner = SubprocessRunner(python="/no/such/python")
    try:
        run_step(runner, request_for("fine", tmp_path), logging.getLogger("t"))
    except Exception as exc:
        assert "cannot start the step's Python '/no/such/python'" in str(exc)
    else:
        raise AssertionError("expected an error")


class TestSubprocessRunnerContract(RunnerContract):
    """A fresh process per step (warm: false); tests/step_server/test_step_server.py runs the same
    contract with the step server."""

    kills_before_start = True
    start_method = "_start_process"

    @pytest.fixture
    def runner_factory(self):
        return lambda: SubprocessRunner(kill_timeout=5, warm=False)

    @pytest.fixture
    def storage_spec(self, tmp_path):
        return StorageSpec("filesystem", {"base_dir": str(tmp_path)})


# An Airflow task process in miniature: runs a slow step through the runner, says when it is
# running, and is then killed with SIGKILL (as the OOM killer or a lost worker would).
TASK_PROCESS = """
import json, logging, sys
from dagster_airflow.model import StepRequest
from dagster_airflow.runners.subprocess import SubprocessRunner
from dagster_airflow.testing.run_context import run_step
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s", force=True)
runner = SubprocessRunner(warm=sys.argv[2] == "warm")
run_step(runner, StepRequest.from_json(sys.argv[1]), logging.getLogger("task"))
"""


@pytest.mark.parametrize("mode", ["fresh", "warm"])
def test_the_step_process_dies_with_the_airflow_task_process(tmp_path, mode):
    import subprocess
    import sys

    config = {"ops": {"sleepy": {"config": {"pid_file": str(tmp_path / "pid"), "seconds": 600}}}}
    request = request_for("sleepy", tmp_path, config)
    task = subprocess.Popen(
        [sys.executable, "-c", TASK_PROCESS, request.to_json(), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    step_pid = None
    for line in task.stdout:
        if line.startswith("Step process "):
            step_pid = int(line.split()[2])
            break
    assert step_pid is not None, "the runner did not log its step process"
    deadline = time.monotonic() + 120
    while not (tmp_path / "pid").exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # until the op runs
    assert (tmp_path / "pid").exists(), "the step never started its op"
    task.kill()
    task.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(step_pid):
        time.sleep(0.05)
    survived = _alive(step_pid)
    if survived:
        os.kill(step_pid, 9)
    assert not survived, f"step process {step_pid} outlived the Airflow task process"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"  # a zombie is dead
    except FileNotFoundError:
        return False


def test_the_step_gets_no_airflow_configuration_or_secrets(tmp_path, monkeypatch):
    from dagster_airflow.runners.subprocess import step_environment

    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql://airflow:pw@db/airflow")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", "aws://AKIA:secret@")
    monkeypatch.setenv("AIRFLOW_VAR_API_KEY", "k")
    monkeypatch.setenv("MY_TEAM_SETTING", "kept")
    env = step_environment(os.environ, {"FROM_OPTION": "1"}, {"DAGSTER_AIRFLOW_STEP_REQUEST": "{}"})
    assert not [k for k in env if k.startswith("AIRFLOW")]
    assert env["MY_TEAM_SETTING"] == "kept"
    assert env["FROM_OPTION"] == "1"
    assert env["DAGSTER_AIRFLOW_STEP_REQUEST"] == "{}"


def test_a_real_step_sees_no_airflow_variable(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", "aws://AKIA:hunter2@")
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "fernet-secret")
    config = {"ops": {"env_dump": {"config": {"prefix": "AIRFLOW"}}}}
    request = StepRequest(
        code_location=CodeLocation(python_file=str(JOBS / "env_dump.py")),
        job_name="env_dump_job",
        step_key="env_dump",
        run_id=RUN_ID,
        run_config=config,
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
    )
    result = SubprocessRunner().run(request, run_context_for(request, logging.getLogger("t")))
    assert result.status == SUCCESS, result.error
    assert "variables starting with 'AIRFLOW': []" in caplog.text
