"""No shared folder is trusted (issue 23): another local user (here `nobody`, a real process
of theirs) gets to a folder first, plants what they like, and the victim's step, `results`,
`scaffold` and `servers` refuse it in one sentence; nothing planted is loaded or signalled."""

from __future__ import annotations

import fcntl
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from dagster_airflow.model import CodeLocation, StepRequest, StorageSpec, dagster_run_id
from dagster_airflow.runners.subprocess import SubprocessRunner
from dagster_airflow.step_result import FAILURE
from dagster_airflow.step_server.protocol import SERVER_MODULE, alive, process_identity
from dagster_airflow.testing.run_context import run_context_for
from tests.conftest import EXAMPLES, run_cli

NOBODY = 65534
AIRFLOW_RUN = "manual__2026-12-07T10:00:00+00:00"
RUN_ID = dagster_run_id("demo_pipeline", AIRFLOW_RUN)
STORAGE_FIX = "set the storage's 'base_dir' option to a folder of your own."
RUNTIME_FIX = (
    "set $DAGSTER_AIRFLOW_RUNTIME_DIR (or the subprocess runner's runtime_dir option) to a "
    "folder of your own."
)
THEIRS = "a folder owned by nobody (uid 65534) with mode 0755, another user, who can change what "


class Payload:
    """A pickle that runs a command when it is loaded."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def plant(base: Path, marker: Path) -> None:
    """The attacker's move: make the folder the victim will use, and put a pickle at the run's
    predictable place in it."""
    folder = base / RUN_ID / "multiply_the_word"
    folder.mkdir(parents=True)
    (folder / "result").write_bytes(pickle.dumps(Payload(f"touch {marker}")))


@pytest.fixture
def shared_tmp():
    """A folder as /tmp is (mode 1777, sticky): every user may add entries to it."""
    path = Path(tempfile.mkdtemp(prefix="da-shared-", dir="/tmp"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def as_nobody(action, *args) -> None:
    """Run ``action(*args)`` in a child process of user and group nobody: the other user."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.umask(0o022)
            action(*args)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def planted(shared_tmp: Path) -> tuple[Path, Path]:
    """The victim's default base_dir ($TMPDIR/dagster-airflow-UID), made first by nobody with
    a pickle in it, and the file that pickle makes when it is loaded."""
    base = shared_tmp / f"dagster-airflow-{os.geteuid()}"
    marker = shared_tmp / "PWNED"
    as_nobody(plant, base, marker)
    assert base.stat().st_uid == NOBODY
    return base, marker


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def refusal(what: str, path: Path, problem: str, remedy: str, fix: str) -> str:
    return f"{what} {str(path)!r} is not safe to use: it is {problem}; {remedy}, or {fix}"


def test_a_step_refuses_the_default_folder_another_user_made_first(
    shared_tmp, monkeypatch, task_log
):
    monkeypatch.setenv("TMPDIR", str(shared_tmp))  # the step's default base_dir is under it
    base, marker = planted(shared_tmp)
    before = files_under(base)
    request = StepRequest(
        code_location=CodeLocation(python_file=str(EXAMPLES / "demo.py")),
        job_name="demo_pipeline",
        step_key="count_letters",  # reads multiply_the_word's result
        run_id=RUN_ID,
        run_config=yaml.safe_load((EXAMPLES / "demo.yml").read_text()),
        storage=StorageSpec("filesystem"),  # the default base_dir, as a scaffolded DAG has it
    )
    result = SubprocessRunner(warm=False).run(request, run_context_for(request, task_log.logger))
    assert result.status == FAILURE
    expected = refusal(
        "the filesystem storage's base_dir",
        base,
        THEIRS + "is read from it",
        "remove it",
        STORAGE_FIX,
    )
    assert expected in task_log.text
    assert not result.retryable  # no retry can make the folder trustworthy
    assert not marker.exists()
    assert files_under(base) == before  # the step wrote nothing there either


def test_results_show_refuses_the_default_folder_another_user_made_first(shared_tmp, tmp_path):
    dag_file = tmp_path / "demo_dag.py"
    scaffolded = run_cli(
        *("scaffold", "demo_pipeline", "-f", str(EXAMPLES / "demo.py")),
        *("-e", str(EXAMPLES / "demo.yml"), "--dag-id", "demo_pipeline"),
    )
    assert scaffolded.returncode == 0, scaffolded.stderr
    # The per-user default is not written into the DAG: each process resolves its own.
    assert '"storage": {"name": "filesystem"},' in scaffolded.stdout
    dag_file.write_text(scaffolded.stdout)
    base, marker = planted(shared_tmp)
    env = {**os.environ, "TMPDIR": str(shared_tmp)}
    for extra in ([], ["--show", "multiply_the_word"]):
        done = run_cli(
            *("results", "demo_pipeline", AIRFLOW_RUN, "--dag-file", str(dag_file), *extra),
            env=env,
        )
        assert (done.returncode, done.stdout) == (2, "")
        expected = refusal(
            "the filesystem storage's base_dir",
            base,
            THEIRS + "is read from it",
            "remove it",
            STORAGE_FIX,
        )
        assert done.stderr == f"dagster-airflow results: {expected}\n"
    assert not marker.exists()


def test_scaffold_refuses_a_base_dir_of_another_user(shared_tmp):
    base, _ = planted(shared_tmp)
    done = run_cli(
        *("scaffold", "demo_pipeline", "-f", str(EXAMPLES / "demo.py")),
        *("-e", str(EXAMPLES / "demo.yml"), "--storage-option", f"base_dir={base}"),
    )
    assert (done.returncode, done.stdout) == (2, "")
    expected = refusal(
        "the filesystem storage's base_dir",
        base,
        THEIRS + "is read from it",
        "remove it",
        STORAGE_FIX,
    )
    assert done.stderr == f"dagster-airflow scaffold: {expected}\n"


@pytest.fixture
def sleeper():
    """An unrelated process of this user: it must survive every `servers --stop` below."""
    process = subprocess.Popen(["sleep", "600"])
    yield process
    process.kill()
    process.wait()


def fake_server(directory: Path, key: str, pid: int, identity: dict | None) -> Path:
    info = directory / f"{key}.json"
    record = {"pid": pid, "key": key, "python": sys.executable, "started": 0.0}
    record["code_location"] = {"python_file": str(EXAMPLES / "demo.py")}
    if identity is not None:
        record["identity"] = identity
    info.write_text(json.dumps(record))
    return info


def test_servers_refuses_a_runtime_dir_of_another_user(shared_tmp, sleeper):
    runtime_dir = shared_tmp / f"dagster-airflow-{os.geteuid()}"
    as_nobody(os.mkdir, runtime_dir, 0o755)
    fake_server(runtime_dir, "0123456789abcdef", sleeper.pid, process_identity(sleeper.pid))
    expected = refusal(
        "the step servers' runtime directory",
        runtime_dir,
        THEIRS + "is read from it",
        "remove it",
        RUNTIME_FIX,
    )
    for stop in ([], ["--stop"]):
        done = run_cli("servers", "--runtime-dir", str(runtime_dir), *stop)
        assert (done.returncode, done.stdout) == (2, "")
        assert done.stderr == f"dagster-airflow servers: {expected}\n"
    assert sleeper.poll() is None


def test_servers_refuses_a_runtime_dir_others_can_enter(tmp_path):
    runtime_dir = tmp_path / "servers"
    runtime_dir.mkdir(mode=0o711)
    runtime_dir.chmod(0o711)
    done = run_cli("servers", "--runtime-dir", str(runtime_dir), "--stop")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "dagster-airflow servers: " + refusal(
        "the step servers' runtime directory",
        runtime_dir,
        "a folder owned by root (uid 0) with mode 0711, which other users can enter",
        f"run chmod 700 {str(runtime_dir)!r}",
        RUNTIME_FIX + "\n",
    )


@pytest.mark.parametrize("claim", ["no identity", "the sleeper's own", "a server's, pid reused"])
def test_servers_stop_signals_no_process_that_is_not_a_step_server(tmp_path, sleeper, claim):
    """A JSON in a private runtime dir that names an unrelated process (a stale file whose pid
    was reused, or one written by anything else of this user), with the key's lock held as a
    live server holds it: `servers --stop` says why in one sentence and signals nothing."""
    runtime_dir = tmp_path / "servers"
    runtime_dir.mkdir(mode=0o700)
    key = "0123456789abcdef"
    server_argv = [sys.executable, "-m", SERVER_MODULE, "--runtime-dir", str(runtime_dir)]
    identity = {
        "no identity": None,
        "the sleeper's own": process_identity(sleeper.pid),
        "a server's, pid reused": {
            "start_time": 1,
            "cmdline": [*server_argv, "--key", key],
            "uid": os.geteuid(),
        },
    }[claim]
    info = fake_server(runtime_dir, key, sleeper.pid, identity)
    reason = {
        "no identity": "the file records no start time and command line for it",
        "the sleeper's own": "its command line 'sleep 600' is not this key's step server's",
        "a server's, pid reused": "it started at another time than the server that wrote the file",
    }[claim]
    lock = os.open(runtime_dir / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = run_cli("servers", "--runtime-dir", str(runtime_dir), "--stop")
    finally:
        os.close(lock)
    assert done.returncode == 2, done.stderr
    assert done.stdout == f"no step servers in {runtime_dir}\n"
    assert done.stderr == (
        f"dagster-airflow servers: not stopping process {sleeper.pid}, which {str(info)!r} "
        f"names: {reason}, so it is not provably a step server of this directory; remove that "
        "file if no step server of yours wrote it.\n"
    )
    assert sleeper.poll() is None and alive(sleeper.pid)
    sleeper.send_signal(signal.SIGTERM)  # it was alive to the end: now it may go
