"""Nothing escapes its task (issue 23, point 4): a daemon that an op starts (double fork,
``setsid``: out of the step's process group and session) ends with its step, whether the step
succeeds, fails, is killed, times out or loses its Airflow task process to SIGKILL; for a fresh
step process (warm: false) and for a step forked by the step server."""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from dagster_airflow.model import CodeLocation, StepRequest, StorageSpec
from dagster_airflow.runners.subprocess import SubprocessRunner
from dagster_airflow.step_result import FAILURE, SUCCESS
from dagster_airflow.step_server.protocol import alive, stop_servers
from dagster_airflow.testing.run_context import run_step
from dagster_airflow.testing.task_log import TaskLog
from tests.conftest import JOBS, scaffold

RUN_ID = "3d9a8e2f-6b1c-5d4e-8f7a-2c3b4d5e6f70"
MODES = ["fresh", "warm"]
LEFT_RUNNING = "dagster-airflow: the step left 1 process ("
STEP_TIMEOUT = 120  # seconds a step may take to start its daemon, start-up included


@pytest.fixture(scope="module")
def servers_dir():
    """One runtime directory for this file's warm steps: its server starts once."""
    path = Path(tempfile.mkdtemp(prefix="da-reap-", dir="/tmp"))
    yield path
    stop_servers(path)
    shutil.rmtree(path, ignore_errors=True)


def runner_for(mode: str, servers_dir: Path) -> SubprocessRunner:
    return SubprocessRunner(kill_timeout=5, warm=mode == "warm", runtime_dir=str(servers_dir))


def daemon_request(tmp_path: Path, then: str) -> StepRequest:
    config = {"pid_file": str(tmp_path / "daemon.pid"), "then": then}
    return StepRequest(
        code_location=CodeLocation(python_file=str(JOBS / "daemon.py")),
        job_name="daemon",
        step_key="spawn_daemon",
        run_id=RUN_ID,
        run_config={"ops": {"spawn_daemon": {"config": config}}},
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path / "storage")}),
    )


def daemon_started(tmp_path: Path, output: TaskLog) -> int:
    """The daemon's pid, once the op says it started it; checks that it left the step's process
    group (so a process-group kill would miss it)."""
    assert output.wait_for("started daemon", STEP_TIMEOUT), "the op never started its daemon"
    (line,) = [m for m in output.messages if m.startswith("started daemon")]
    return escaped(tmp_path, line)


def escaped(tmp_path: Path, line: str) -> int:
    """The daemon's pid, from the op's line ``started daemon PID from step process PID``,
    checked to be out of the step's process group and session."""
    pid, op = int(line.split()[2]), int(line.split()[-1])
    assert int((tmp_path / "daemon.pid").read_text()) == pid
    assert os.getpgid(pid) != os.getpgid(op) and os.getsid(pid) != os.getsid(op)
    return pid


def assert_ends(pid: int, timeout: float = 10.0) -> None:
    """Wait until ``pid`` has exited (on its pidfd, with a deadline); SIGKILL it and fail if
    it has not."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        ended, _, _ = select.select([pidfd], [], [], timeout)
        if not ended and alive(pid):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            raise AssertionError(f"the op's daemon {pid} outlived its step")
    finally:
        os.close(pidfd)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("then", "status"), [("succeed", SUCCESS), ("fail", FAILURE)])
def test_the_daemon_ends_when_its_step_ends(tmp_path, servers_dir, task_log, mode, then, status):
    result = run_step(
        runner_for(mode, servers_dir), daemon_request(tmp_path, then), task_log.logger
    )
    assert result.status == status, result.error
    pid = int((tmp_path / "daemon.pid").read_text())
    # Gone by the time run() returns, and the task log says what was ended and why.
    assert_ends(pid, timeout=0.0)
    (line,) = [m for m in task_log.messages if m.startswith(LEFT_RUNNING)]
    assert line == (
        f"{LEFT_RUNNING}{pid} sleep) running and ended it with SIGKILL: every process a step "
        "starts ends with the step, so have the op wait for what it starts."
    )


@pytest.mark.parametrize("mode", MODES)
def test_the_daemon_ends_when_its_step_is_killed(tmp_path, servers_dir, task_log, mode):
    runner = runner_for(mode, servers_dir)
    results = []
    thread = threading.Thread(
        target=lambda: results.append(
            run_step(runner, daemon_request(tmp_path, "sleep"), task_log.logger)
        )
    )
    thread.start()
    pid = daemon_started(tmp_path, task_log)
    runner.kill()  # Airflow's on_kill
    thread.join(STEP_TIMEOUT)
    assert not thread.is_alive(), "kill() did not end the step"
    assert results[0].status == FAILURE
    assert "stopped while it ran" in results[0].error.summary()
    assert_ends(pid)


class Timeout(Exception):
    """What Airflow's execution_timeout raises in the task (AirflowTaskTimeout), by SIGALRM."""


@pytest.mark.parametrize("mode", MODES)
def test_the_daemon_ends_when_its_step_times_out(tmp_path, servers_dir, task_log, mode):
    runner = runner_for(mode, servers_dir)
    started = []
    main = threading.get_ident()

    def time_out_once_the_daemon_runs() -> None:
        started.append(daemon_started(tmp_path, task_log))
        signal.pthread_kill(main, signal.SIGALRM)

    def on_alarm(signum, frame):
        # The alarm falls as the line it waited for is being logged, and logging swallows an
        # exception raised inside it: fall again once out of it.
        while frame is not None:
            if frame.f_code.co_filename == logging.__file__:
                signal.setitimer(signal.ITIMER_REAL, 0.05)
                return
            frame = frame.f_back
        raise Timeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    alarm = threading.Thread(target=time_out_once_the_daemon_runs)
    try:
        alarm.start()
        with pytest.raises(Timeout):
            run_step(runner, daemon_request(tmp_path, "sleep"), task_log.logger)
    finally:
        alarm.join(STEP_TIMEOUT)
        signal.signal(signal.SIGALRM, previous)
    runner.kill()  # what Airflow's task runner does after the timeout: on_kill
    (pid,) = started
    assert_ends(pid)


# An Airflow task process in miniature: runs the step through the runner, prints the task log.
TASK_PROCESS = """
import logging, sys
from dagster_airflow.model import StepRequest
from dagster_airflow.runners.subprocess import SubprocessRunner
from dagster_airflow.testing.run_context import run_step
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s", force=True)
runner = SubprocessRunner(warm=sys.argv[2] == "warm", runtime_dir=sys.argv[3])
run_step(runner, StepRequest.from_json(sys.argv[1]), logging.getLogger("task"))
"""


@pytest.mark.parametrize("mode", MODES)
def test_the_daemon_ends_when_the_task_process_is_sigkilled(tmp_path, servers_dir, mode):
    request = daemon_request(tmp_path, "sleep")
    task = subprocess.Popen(
        [sys.executable, "-c", TASK_PROCESS, request.to_json(), mode, str(servers_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    step = pid = None
    for line in task.stdout:
        if line.startswith("Step process "):
            step = int(line.split()[2])
        if line.startswith("started daemon"):
            pid = escaped(tmp_path, line)
            break
    assert step is not None and pid is not None, "the step did not start its daemon"
    task.kill()  # as the OOM killer or a lost worker would
    task.wait()
    task.stdout.close()
    assert_ends(pid)
    assert_ends(step)


@pytest.mark.airflow
def test_through_airflow_the_daemon_ends_with_its_task(airflow_home, tmp_path):
    """What users saw: the op's daemon ran on after its Airflow task succeeded."""
    config = tmp_path / "run_config.yml"
    config.write_text(
        f"ops:\n  spawn_daemon:\n    config:\n      pid_file: {tmp_path / 'daemon.pid'}\n"
        "      then: succeed\n"
    )
    text = scaffold(
        "daemon",
        "-f",
        str(JOBS / "daemon.py"),
        "--dag-id",
        "e2e_daemon",
        "-e",
        str(config),
        "--storage-option",
        f"base_dir={tmp_path / 'storage'}",
    )
    airflow_home.install(text, "e2e_daemon.py")
    result = airflow_home.dags_test("e2e_daemon")
    assert result.succeeded, result.output[-3000:]
    pid = int((tmp_path / "daemon.pid").read_text())
    assert_ends(pid, timeout=0.0)
    assert f"{LEFT_RUNNING}{pid} sleep) running and ended it" in result.output


def test_processes_this_user_may_not_kill_are_named_as_running_on():
    # (A test run as root can kill every process: the line is checked as the reaper writes it.)
    from dagster_airflow.reaper import leftovers_line

    assert leftovers_line({4242: "sleep"}, {99: "sudo"}) == (
        "dagster-airflow: the step left 2 processes (99 sudo, 4242 sleep) running; this user may "
        "not kill 1 process (99 sudo), which runs on (the rest were ended with SIGKILL): have the "
        "op wait for what it starts.\n"
    )
