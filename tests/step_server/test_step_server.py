"""The subprocess runner with its step server (warm: true) against real servers and steps.

Each test has a runtime directory of its own, so it never shares a server with another test or
a developer's, and stops the servers it started by their pid.
"""

from __future__ import annotations

import ast
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from dagster_airflow.model import CodeLocation, StepRequest, StorageSpec
from dagster_airflow.runners.subprocess import SubprocessRunner, server_environment
from dagster_airflow.step_result import FAILURE, SUCCESS
from dagster_airflow.step_server.client import StepServerClient
from dagster_airflow.step_server.protocol import (
    alive,
    recv_frame,
    running_servers,
    send_frame,
    stop_servers,
)
from dagster_airflow.testing.contracts import RunnerContract
from dagster_airflow.testing.run_context import run_context_for, run_step
from dagster_airflow.testing.task_log import TaskLog
from tests.conftest import EXAMPLES, JOBS, run_cli

RUN_ID = "5b0f4c1e-7d2a-5c3b-9e8f-1a2b3c4d5e6f"
FORKED = "forked by step server"


@pytest.fixture
def runtime_dir():
    path = Path(tempfile.mkdtemp(prefix="da-t-", dir="/tmp"))
    yield path
    stop_servers(path)
    shutil.rmtree(path, ignore_errors=True)


def isolation_request(tmp_path, seconds=0, pid_file="", step_key="mutate") -> StepRequest:
    return StepRequest(
        code_location=CodeLocation(python_file=str(JOBS / "isolation.py")),
        job_name="isolation",
        step_key=step_key,
        run_id=RUN_ID,
        run_config={"ops": {"mutate": {"config": {"seconds": seconds, "pid_file": pid_file}}}},
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path / "storage")}),
    )


def report(task_log: TaskLog) -> list[dict]:
    prefix = "isolation report: "
    return [ast.literal_eval(m[len(prefix) :]) for m in task_log.messages if m.startswith(prefix)]


def server_pids(task_log: TaskLog) -> list[int]:
    return [int(m.rstrip(")").split()[-1]) for m in task_log.messages if FORKED in m]


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class TestStepServerRunnerContract(RunnerContract):
    kills_before_start = True

    @pytest.fixture
    def runner_factory(self, runtime_dir):
        return lambda: SubprocessRunner(kill_timeout=5, runtime_dir=str(runtime_dir))

    @pytest.fixture
    def storage_spec(self, tmp_path):
        return StorageSpec("filesystem", {"base_dir": str(tmp_path)})

    def test_the_step_was_forked_by_the_server(self, runner_factory, tmp_path, task_log):
        request = isolation_request(tmp_path)
        assert (
            runner_factory().run(request, run_context_for(request, task_log.logger)).status
            == SUCCESS
        )
        assert len(server_pids(task_log)) == 1
        assert "Step server unavailable" not in task_log.text


def test_steps_share_nothing_but_the_loaded_code(tmp_path, runtime_dir, task_log, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "fernet-of-the-task")
    work = tmp_path / "work"
    work.mkdir()
    runner = SubprocessRunner(runtime_dir=str(runtime_dir), working_dir=str(work))
    secret = {"ISOLATION_SECRET": "hunter2-the-secret"}
    for _ in range(2):
        result = run_step(
            SubprocessRunner(runtime_dir=str(runtime_dir), working_dir=str(work)),
            isolation_request(tmp_path),
            task_log.logger,
            secret,
        )
        assert result.status == SUCCESS, result.error
    first, second = report(task_log)
    (server,) = set(server_pids(task_log))
    # A global one step mutated, a variable it set, a thread and a file it left are not in the
    # next.
    assert first["global"] == second["global"] == []
    assert first["env"] is None and second["env"] is None
    # (The step has its credentials, so its worker redacts its output in a thread of its own.)
    assert first["threads"] == second["threads"] == ["MainThread", "redacted-output"]
    assert first["open_files"] == second["open_files"] == []
    # Each its own process, with the request's credentials, the working directory, and none of
    # Airflow's configuration; the module-level code ran once, in the server.
    assert len({first["pid"], second["pid"], server}) == 3
    # The credential reached the step: what it reported of it is redacted.
    assert first["secret"] == second["secret"] == "***"
    assert "hunter2-the-secret" not in task_log.text
    assert first["cwd"] == second["cwd"] == str(work)
    assert first["airflow"] == []
    assert first["loaded_in_pid"] == second["loaded_in_pid"] == server
    # The server never saw the request or the credentials.
    environ = Path(f"/proc/{server}/environ").read_bytes()
    cmdline = Path(f"/proc/{server}/cmdline").read_bytes()
    for held in (environ, cmdline):
        assert b"hunter2-the-secret" not in held
        assert b"DAGSTER_AIRFLOW_STEP_REQUEST" not in held
        assert RUN_ID.encode() not in held
        assert b"fernet-of-the-task" not in held
    del runner


FRESH_JOB = """
import time
from pathlib import Path

import dagster as dg
from fresh_helper import VALUE


@dg.op(config_schema={"pid_file": str, "seconds": int})
def slow(context):
    context.log.info(f"slow sees value {VALUE}")
    Path(context.op_config["pid_file"]).write_text("running")
    time.sleep(context.op_config["seconds"])
    return VALUE


@dg.op
def value(context) -> int:
    context.log.info(f"value is {VALUE} {MARK}")
    return VALUE


MARK = "first"


@dg.job
def fresh():
    slow()
    value()
"""


def test_a_changed_code_location_is_reloaded_before_the_next_step(tmp_path, runtime_dir):
    code = tmp_path / "code"
    code.mkdir()
    (code / "fresh_helper.py").write_text("VALUE = 1\n")
    job_file = code / "fresh_job.py"
    job_file.write_text(FRESH_JOB)
    location = CodeLocation(python_file=str(job_file), working_directory=str(code))
    pid_file = tmp_path / "slow.pid"

    def request(step_key: str, secs: int = 0) -> StepRequest:
        return StepRequest(
            code_location=location,
            job_name="fresh",
            step_key=step_key,
            run_id=RUN_ID,
            run_config={"ops": {"slow": {"config": {"pid_file": str(pid_file), "seconds": secs}}}},
            storage=StorageSpec("filesystem", {"base_dir": str(tmp_path / "storage")}),
        )

    def run(step_key: str, seconds: int = 0) -> TaskLog:
        with TaskLog() as task_log:
            result = run_step(
                SubprocessRunner(runtime_dir=str(runtime_dir)),
                request(step_key, seconds),
                task_log.logger,
            )
        assert result.status == SUCCESS, result.error
        return task_log

    assert "value is 1 first" in run("value").text
    # A module the code location imported from its working directory changes...
    (code / "fresh_helper.py").write_text("VALUE = 22\n")
    assert "value is 22 first" in run("value").text
    # ... and the file itself, while another step runs: that step keeps its code, the next
    # step gets the new one.
    slow_log = TaskLog()
    results = []
    with slow_log:
        runner = SubprocessRunner(runtime_dir=str(runtime_dir))
        thread = threading.Thread(
            target=lambda: results.append(run_step(runner, request("slow", 8), slow_log.logger))
        )
        thread.start()
        wait_until(pid_file.exists, 120, "the slow step to run")
        job_file.write_text(FRESH_JOB.replace('MARK = "first"', 'MARK = "second, edited"'))
        edited = run("value")
        thread.join(120)
    assert "value is 22 second, edited" in edited.text
    assert "Step server reloads the code location" in edited.text
    assert results[0].status == SUCCESS
    assert "slow sees value 22" in slow_log.text
    # The reload kept the server's pid, socket and lock: still one server.
    assert len(running_servers(runtime_dir)) == 1


def test_four_steps_started_at_once_make_one_server(tmp_path, runtime_dir):
    logs = [TaskLog() for _ in range(4)]
    results = {}

    def one(i: int) -> None:
        with logs[i]:
            runner = SubprocessRunner(runtime_dir=str(runtime_dir))
            results[i] = run_step(runner, isolation_request(tmp_path), logs[i].logger)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert [results[i].status for i in range(4)] == [SUCCESS] * 4
    # Each step's output reached its own task's log, and only that one.
    reports = [report(log) for log in logs]
    assert [len(found) for found in reports] == [1, 1, 1, 1]
    assert len({found[0]["pid"] for found in reports}) == 4
    servers = {pid for log in logs for pid in server_pids(log)}
    assert len(servers) == 1
    assert [s.pid for s in running_servers(runtime_dir)] == list(servers)
    assert not [log for log in logs if "Step server unavailable" in log.text]


def test_kill_stops_the_step_and_its_process_group(tmp_path, runtime_dir, task_log):
    pid_file = tmp_path / "pid"
    runner = SubprocessRunner(runtime_dir=str(runtime_dir), kill_timeout=5)
    results = []
    thread = threading.Thread(
        target=lambda: results.append(
            run_step(runner, isolation_request(tmp_path, 600, str(pid_file)), task_log.logger)
        )
    )
    thread.start()
    wait_until(pid_file.exists, 120, "the op to run")
    pid = int(pid_file.read_text())
    runner.kill()
    thread.join(60)
    assert not thread.is_alive()
    assert results[0].status == FAILURE
    assert "stopped while it ran" in results[0].error.summary()
    assert not alive(pid)
    # and the step's event log was written, as when a fresh step is killed
    events = tmp_path / "storage" / RUN_ID / "mutate" / "events.jsonl"
    assert '"STEP_FAILURE"' in events.read_text().splitlines()[-1]


class Timeout(Exception):
    """What Airflow's execution_timeout raises in the task (AirflowTaskTimeout), by SIGALRM."""


def test_an_execution_timeout_stops_the_step(tmp_path, runtime_dir, task_log):
    pid_file = tmp_path / "pid"
    runner = SubprocessRunner(runtime_dir=str(runtime_dir), kill_timeout=5)
    # Start the server first, so the alarm falls while the op runs.
    assert run_step(runner, isolation_request(tmp_path), task_log.logger).status == SUCCESS

    def on_alarm(signum, frame):
        raise Timeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.alarm(8)
        with pytest.raises(Timeout):
            run_step(runner, isolation_request(tmp_path, 600, str(pid_file)), task_log.logger)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert pid_file.exists(), "the op never ran before the timeout"
    pid = int(pid_file.read_text())
    runner.kill()  # what Airflow's task runner does after the timeout: on_kill
    wait_until(lambda: not alive(pid), 30, "the step to stop")
    # run() had stopped reading: kill() read the step's last words into the task log
    assert "the step was stopped while it ran" in task_log.text


TASK_PROCESS = """
import logging, sys
from dagster_airflow.model import StepRequest
from dagster_airflow.runners.subprocess import SubprocessRunner
from dagster_airflow.testing.run_context import run_step
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s", force=True)
runner = SubprocessRunner(runtime_dir=sys.argv[2])
run_step(runner, StepRequest.from_json(sys.argv[1]), logging.getLogger("task"))
"""


def test_sigkill_of_the_task_process_leaves_no_step_behind(tmp_path, runtime_dir):
    pid_file = tmp_path / "pid"
    request = isolation_request(tmp_path, 600, str(pid_file))
    task = subprocess.Popen(
        [sys.executable, "-c", TASK_PROCESS, request.to_json(), str(runtime_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    step_pid = None
    for line in task.stdout:
        if line.startswith("Step process ") and FORKED in line:
            step_pid = int(line.split()[2])
            break
    assert step_pid is not None, "the runner did not log a forked step"
    wait_until(pid_file.exists, 120, "the op to run")
    supervisor = int(Path(f"/proc/{step_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    task.kill()
    task.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (alive(step_pid) or alive(supervisor)):
        time.sleep(0.05)
    left = [pid for pid in (step_pid, supervisor) if alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes {left} outlived the Airflow task process"


def test_an_idle_server_exits(tmp_path, runtime_dir, task_log):
    runner = SubprocessRunner(runtime_dir=str(runtime_dir), idle_timeout=1)
    assert run_step(runner, isolation_request(tmp_path), task_log.logger).status == SUCCESS
    (server,) = server_pids(task_log)
    wait_until(lambda: not alive(server), 30, "the idle server to exit")
    assert not list(runtime_dir.glob("*.sock"))
    assert running_servers(runtime_dir) == []


def test_a_crashed_server_is_restarted_by_the_next_step(tmp_path, runtime_dir):
    pids = []
    for _ in range(2):
        with TaskLog() as task_log:
            runner = SubprocessRunner(runtime_dir=str(runtime_dir))
            result = run_step(runner, isolation_request(tmp_path), task_log.logger)
        assert result.status == SUCCESS
        assert "Step server unavailable" not in task_log.text
        (server,) = server_pids(task_log)
        pids.append(server)
        os.kill(server, signal.SIGKILL)
        wait_until(lambda server=server: not alive(server), 10, "the server to die")
    assert pids[0] != pids[1]


def test_a_step_outlives_its_server_killed_while_it_runs(tmp_path, runtime_dir, task_log):
    pid_file = tmp_path / "pid"
    runner = SubprocessRunner(runtime_dir=str(runtime_dir))
    results = []
    thread = threading.Thread(
        target=lambda: results.append(
            run_step(runner, isolation_request(tmp_path, 3, str(pid_file)), task_log.logger)
        )
    )
    thread.start()
    wait_until(pid_file.exists, 120, "the op to run")
    (server,) = running_servers(runtime_dir)
    os.kill(server.pid, signal.SIGKILL)
    thread.join(60)
    assert not thread.is_alive()
    assert results[0].status == SUCCESS, results[0].error
    assert not alive(server.pid) and not alive(int(pid_file.read_text()))


def test_the_server_listens_where_only_this_user_can_reach_it(tmp_path, runtime_dir, task_log):
    runner = SubprocessRunner(runtime_dir=str(runtime_dir))
    assert run_step(runner, isolation_request(tmp_path), task_log.logger).status == SUCCESS
    (server,) = running_servers(runtime_dir)
    assert runtime_dir.stat().st_mode & 0o777 == 0o700
    for path in (server.files.socket, server.files.info, server.files.log, server.files.lock):
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_a_client_that_says_nothing_delays_no_other_step(tmp_path, runtime_dir, task_log):
    """Each connection is served on its own: while one client has connected and said nothing,
    another's step is accepted, forked and finished by the same server, and the silent client
    is still connected (and served once it speaks). A server that read first messages in turn
    would have held the step until it dropped the silent client, whose end would then be
    closed."""
    runner = SubprocessRunner(runtime_dir=str(runtime_dir))
    assert run_step(runner, isolation_request(tmp_path), task_log.logger).status == SUCCESS
    (server,) = running_servers(runtime_dir)
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(str(server.files.socket))
    try:
        with TaskLog() as other:
            result = run_step(
                SubprocessRunner(runtime_dir=str(runtime_dir)),
                isolation_request(tmp_path),
                other.logger,
            )
        assert result.status == SUCCESS, result.error
        assert server_pids(other) == [server.pid]  # warm, not a fresh process after a wait
        silent.setblocking(False)
        with pytest.raises(BlockingIOError):  # no answer and no end of file: still waiting
            silent.recv(1)
        silent.settimeout(30)
        send_frame(silent, {"op": "status"})
        reply, _ = recv_frame(silent)
        assert (reply["pid"], reply["steps"]) == (server.pid, 2)
    finally:
        silent.close()
    # A first message too large for a hello is dropped at once, well before a silent client
    # would be (60 s).
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as greedy:
        greedy.connect(str(server.files.socket))
        greedy.sendall((1 << 30).to_bytes(4, "big"))
        greedy.settimeout(30)
        assert greedy.recv(1) == b""


def test_a_runtime_dir_others_can_enter_is_refused_and_the_step_runs_fresh(tmp_path, task_log):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    result = run_step(
        SubprocessRunner(runtime_dir=str(shared)), isolation_request(tmp_path), task_log.logger
    )
    assert result.status == SUCCESS
    warnings = [r.getMessage() for r in task_log.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"Step server unavailable (the step servers' runtime directory {str(shared)!r} is not "
        "safe to use: it is a folder owned by root (uid 0) with mode 0755, which other users can "
        f"enter; run chmod 700 {str(shared)!r}, or set $DAGSTER_AIRFLOW_RUNTIME_DIR (or the "
        "subprocess runner's runtime_dir option) to a folder of your own); running the step in "
        "a fresh process."
    ]
    assert list(shared.iterdir()) == []


def test_a_runtime_dir_that_cannot_be_made_falls_back_to_a_fresh_process(tmp_path, task_log):
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("")
    runner = SubprocessRunner(runtime_dir=str(not_a_dir))
    result = run_step(runner, isolation_request(tmp_path), task_log.logger)
    assert result.status == SUCCESS
    warnings = [r for r in task_log.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith("Step server unavailable (")
    assert warnings[0].getMessage().endswith("; running the step in a fresh process.")
    assert FORKED not in task_log.text


def test_a_server_that_breaks_the_protocol_falls_back_to_a_fresh_process(
    tmp_path, runtime_dir, task_log
):
    runner = SubprocessRunner(runtime_dir=str(runtime_dir))
    request = isolation_request(tmp_path)
    client = StepServerClient(
        sys.executable,
        request.code_location,
        os.getcwd(),
        {},
        server_environment(os.environ, {}),
        str(runtime_dir),
    )
    # Something else listens on the server's socket and hangs up on every connection.
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(client.files.socket))
    listener.listen(8)
    stop = threading.Event()

    def hang_up() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.close()

    thread = threading.Thread(target=hang_up)
    thread.start()
    try:
        result = runner.run(request, run_context_for(request, task_log.logger))
    finally:
        stop.set()
        thread.join()
        listener.close()
    assert result.status == SUCCESS
    warnings = [r.getMessage() for r in task_log.records if r.levelno == logging.WARNING]
    # (it hangs up before or after reading the request: either way one line says so)
    assert len(warnings) == 1
    assert re.fullmatch(
        r"Step server unavailable \(it (closed the connection without an answer|broke the "
        r"connection: .*)\); running the step in a fresh process\.",
        warnings[0],
    )


def test_a_code_location_that_fails_to_load_runs_fresh_and_reports_the_real_error(
    tmp_path, runtime_dir, task_log
):
    request = StepRequest(
        code_location=CodeLocation(python_file=str(JOBS / "broken.py")),
        job_name="broken",
        step_key="anything",
        run_id=RUN_ID,
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
    )
    result = SubprocessRunner(runtime_dir=str(runtime_dir)).run(
        request, run_context_for(request, task_log.logger)
    )
    assert result.status == FAILURE
    assert "could not load the code location" in result.error.summary()
    assert "running the step in a fresh process" in task_log.text


def test_servers_lists_and_stops_the_running_servers(tmp_path, runtime_dir, task_log):
    runner = SubprocessRunner(runtime_dir=str(runtime_dir))
    assert run_step(runner, isolation_request(tmp_path), task_log.logger).status == SUCCESS
    (server,) = server_pids(task_log)
    env = {**os.environ, "DAGSTER_AIRFLOW_RUNTIME_DIR": str(runtime_dir)}
    listed = run_cli("servers", env=env)
    assert listed.returncode == 0, listed.stderr
    assert str(server) in listed.stdout
    assert str(JOBS / "isolation.py") in listed.stdout
    stopped = run_cli("servers", "--stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped {server}" in stopped.stdout
    assert not alive(server)
    assert "no step servers" in run_cli("servers", env=env).stdout


@pytest.mark.airflow
def test_make_demo_runs_through_airflow_with_one_server_and_stops_it(tmp_path):
    """`make demo` (examples/run_demo.py, here into a folder of the test's own): every step
    forked by one server, Dagster's result, and no server left running at the end."""
    import pickle

    import yaml

    from examples.demo import demo_pipeline

    demo = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "run_demo.py"), str(demo)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=EXAMPLES.parent,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    output = (demo / "dags-test.log").read_text()
    forked = re.findall(r"Step process (\d+) started \(forked by step server (\d+)\)", output)
    assert len({step for step, _ in forked}) == 5, output[-3000:]  # the demo's five steps
    servers = {int(server) for _, server in forked}
    assert len(servers) == 1, output[-3000:]
    assert "Step server unavailable" not in output
    run_id = re.search(r"Results of Dagster run (\S+),", done.stdout)[1]
    ours = pickle.loads((demo / "storage" / run_id / "summarize" / "result").read_bytes())
    run_config = yaml.safe_load((EXAMPLES / "demo.yml").read_text())
    expected = demo_pipeline.execute_in_process(run_config=run_config).output_for_node("summarize")
    assert ours == expected
    # The demo stopped its server by pid and removed the runtime directory it listened in.
    (server,) = servers
    assert f"stopped {server} (" in done.stdout
    assert not alive(server)
    servers_dir = re.search(r"Stopping the demo's step servers in (\S+):", done.stdout)[1]
    assert not Path(servers_dir).exists()


def test_the_docs_examples_work(runtime_dir):
    from dagster_airflow.plugins.manager import check_options, get_plugins
    from tests.conftest import ROOT

    text = (ROOT / "docs" / "step-server.md").read_text()
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        scope: dict = {}
        exec(block, scope)
        options = dict(scope["default_args"]["runner"])
        name = options.pop("name")
        backend = get_plugins().runner(name)
        check_options("runner", name, backend.cls, options)
        assert backend.create(options).warm == options["warm"]
    env = {**os.environ, "DAGSTER_AIRFLOW_RUNTIME_DIR": str(runtime_dir)}
    commands = [line[2:] for line in text.splitlines() if line.startswith("$ dagster-airflow")]
    assert commands == ["dagster-airflow servers", "dagster-airflow servers --stop"]
    for command in commands:
        done = run_cli(*command.split()[1:], env=env)
        assert done.returncode == 0, done.stderr
        assert "no step servers" in done.stdout
