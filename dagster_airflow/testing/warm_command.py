"""A warm command (`airflow`, `dagster-airflow`) for the test kit: one process imports what the
command needs once, and each run of the command is a fresh fork of it (the step server's trick).

`airflow dags test` of a one-task DAG costs about 8 s of CPU, half of it importing Airflow, its
CLI and its in-process execution API, and most of the rest building that API's app (Cadwyn
generates its versioned routes at the first request). A fork of a process that imported them
and built the app took 0.5 to 1 s of wall time on a loaded machine, where a fork of one that
had not built it took 5.6 to 8.6 s.
Each run is still a process of its own, as the command would be: its own environment, working
directory, output files and exit code, the console script's ``sys.path``; a timeout stops its
whole process group.

The server is started with one environment, and what the command reads from the environment at
import (Airflow its configuration, the interpreter ``PYTHONPATH``) is read then, once. A run
whose environment differs in that (``same_start``) is not run here: the caller runs it cold
(see ``AirflowHome.airflow``), and so is every run once packages were installed or removed.

Protocol: JSON lines; requests on the server's standard input, replies on the file descriptor
named by ``--reply-fd``: ``{"pid": N}`` once the run's process is forked, then ``{"code": N}``
when it ended. The server ends when its standard input closes.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import select
import signal
import site
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path


def build_execution_api() -> None:
    """Build, in the server, the app of the in-process execution API that ``airflow dags test``
    calls for each task and trigger, with the versioned routes Cadwyn would generate at its
    first request. Airflow keeps one per process (``in_process_api_server`` is cached from 3.3
    on), so each fork finds it built; the fork starts its own transport (a thread and an event
    loop), as the command would. Before 3.3 each task builds its own, and nothing is built."""
    from airflow.sdk.execution_time import supervisor

    server = getattr(supervisor, "in_process_api_server", None)
    if server is None or not hasattr(server, "cache_info"):
        return
    app = server().app
    if getattr(app, "_cadwyn_initialized", True) is False:
        app._cadwyn_initialize()


# Each command: its entry point (the console script's); what its runs import, imported once by
# the server (a module missing on a side or an older version is imported later, if at all); and
# what the server builds once imported, before any run (or None).
COMMANDS: dict[str, tuple[str, tuple[str, ...], Callable[[], None] | None]] = {
    "airflow": (
        "airflow.__main__:main",
        (
            "airflow.__main__",
            "airflow.cli.cli_parser",
            "airflow.cli.commands.dag_command",
            "airflow.cli.commands.db_command",
            "airflow.sdk.definitions.dag",
            "airflow.sdk.execution_time.supervisor",
            "airflow.sdk.execution_time.task_runner",
            "airflow.api_fastapi.execution_api.app",
            "airflow.providers.standard.operators.empty",
            "dagster_airflow.operator",
        ),
        build_execution_api,
    ),
    "dagster-airflow": (
        "dagster_airflow.cli:main",
        ("dagster", "dagster_airflow.cli", "dagster_airflow.scaffold.render"),
        None,
    ),
}


def read_at_import(env: Mapping[str, str]) -> dict[str, str]:
    """The part of an environment that Airflow (or the interpreter) reads once, at start."""
    return {
        name: value
        for name, value in env.items()
        if (name.startswith("AIRFLOW") and not name.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_")))
        or name in ("PYTHONPATH", "PYTHONHOME", "TZ")
    }


def _run_command(command: str, request: dict) -> None:
    """In the forked child: become ``command <argv>`` and end with its exit code."""
    code = 1
    try:
        os.setsid()  # its own process group: a timeout stops everything it started
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(out, fd)
            os.close(out)
        sys.argv = [command, *request["argv"]]
        module, function = COMMANDS[command][0].split(":")
        entry = getattr(importlib.import_module(module), function)
        try:
            returned = entry()
            code = returned if isinstance(returned, int) else 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(command: str, reply_fd: int) -> None:
    # As the console script would start: its folder first on sys.path (`python -m` put the
    # working directory there), and SIGTERM not ignored (a stray inherited SIG_IGN would pass
    # to every run).
    sys.path[0] = os.path.dirname(sys.executable)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _, imports, prepare = COMMANDS[command]
    for module in imports:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    if prepare is not None:
        prepare()
    replies = os.fdopen(reply_fd, "w", buffering=1, encoding="utf-8")
    # Where packages are installed: a package installed later (or removed) is not in the
    # imports above, so the client starts a new server then (see WarmCommand.accepts).
    folders = [path for path in site.getsitepackages() if os.path.isdir(path)]
    replies.write(json.dumps({"ready": True, "site_packages": folders}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            replies.close()
            _run_command(command, request)
        replies.write(json.dumps({"pid": pid}) + "\n")
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        replies.write(json.dumps({"code": code}) + "\n")


def _installed(folders: Iterable[str]) -> dict[str, int]:
    """What tells that packages were installed or removed: each folder's modification time."""
    return {folder: os.stat(folder).st_mtime_ns for folder in folders}


class WarmCommand:
    """The client: one server of ``command``, started with the environment ``env``."""

    def __init__(
        self,
        python: str,
        env: Mapping[str, str],
        log_path: Path,
        command: str = "airflow",
        same_start: Callable[[Mapping[str, str]], object] = dict,
    ) -> None:
        """``same_start(env)`` is what a run's environment must share with ``env`` to run here
        (default: all of it; ``read_at_import`` for Airflow)."""
        self.command = command
        self._same_start = same_start
        self._at_import = same_start(env)
        self._lock = threading.Lock()
        read_fd, write_fd = os.pipe()
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [python, "-m", __name__, "--command", command, "--reply-fd", str(write_fd)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=dict(env),
                pass_fds=(write_fd,),
                text=True,
            )
        os.close(write_fd)
        self._replies, self._buffer = read_fd, b""
        ready = self._reply(timeout=300)  # the command's modules are imported
        self._site_packages = ready["site_packages"]
        self._installed = _installed(self._site_packages)

    def accepts(self, env: Mapping[str, str]) -> bool:
        """Whether a command with this environment runs here as it would run cold: the server
        runs, the environment is the one Airflow was imported with, and no package was
        installed or removed since."""
        return (
            self.process.poll() is None
            and self._same_start(env) == self._at_import
            and self.same_packages()
        )

    def same_packages(self) -> bool:
        """Whether no package was installed or removed since the server started."""
        return _installed(self._site_packages) == self._installed

    def run(
        self, argv: list[str], env: Mapping[str, str], timeout: float, cwd: str | None = None
    ) -> subprocess.CompletedProcess | None:
        """``command <argv>`` in a fork of the server; None when the server is busy with another
        run (the caller runs this one cold)."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            with tempfile.TemporaryDirectory(prefix="warm-command-") as folder:
                out, err = Path(folder) / "stdout", Path(folder) / "stderr"
                request = {"argv": argv, "env": dict(env), "cwd": str(cwd or os.getcwd())}
                request |= {"stdout": str(out), "stderr": str(err)}
                self.process.stdin.write(json.dumps(request) + "\n")
                self.process.stdin.flush()
                pid = self._reply(timeout=60)["pid"]
                try:
                    code = self._reply(timeout)["code"]
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)
                    self._reply(timeout=60)  # the server reaped it
                    raise subprocess.TimeoutExpired([self.command, *argv], timeout) from None
                read = {"encoding": "utf-8", "errors": "replace"}
                return subprocess.CompletedProcess(
                    [self.command, *argv], code, out.read_text(**read), err.read_text(**read)
                )
        finally:
            self._lock.release()

    def _reply(self, timeout: float) -> dict:
        """The next reply line (read from the descriptor: a buffered reader would hide a line
        that came with the one before from select)."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise TimeoutError(f"no reply from the warm command server within {timeout} s")
            chunk = os.read(self._replies, 4096)
            if not chunk:
                raise RuntimeError("the warm command server ended")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        """End the server (it ends when its standard input closes), by its own process id."""
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._replies)


def main() -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}")
    parser.add_argument("--command", choices=sorted(COMMANDS), default="airflow")
    parser.add_argument("--reply-fd", type=int, required=True)
    args = parser.parse_args()
    serve(args.command, args.reply_fd)


if __name__ == "__main__":
    main()
