"""The subprocess runner's side of a step server: reach it (starting one if none answers), hand
one step's environment and output pipe to it, follow the step, stop it (Airflow side: stdlib)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping

from dagster_airflow.errors import UntrustedFolderError
from dagster_airflow.model import CodeLocation
from dagster_airflow.step_server.protocol import (
    MAX_SOCKET_PATH,
    ServerFiles,
    connect,
    ensure_private_dir,
    recv_frame,
    runtime_dir,
    send_frame,
    server_key,
)

EXIT_ALREADY_RUNNING = 3  # the server's exit code when another server holds its key
_ATTEMPTS = 4


class StepServerUnavailable(Exception):
    """The server could not take the step, which has not started: run it in a fresh process."""


class _Retry(Exception):
    """This attempt to reach the server failed in a way the next attempt may not."""


class StepCancelled(Exception):
    """kill() came before the step started: it must not start at all."""


class StepServerClient:
    """The step server for one interpreter, code location, working directory and ``env``."""

    def __init__(
        self,
        python: str,
        location: CodeLocation,
        cwd: str,
        env_option: Mapping[str, str],
        server_env: Mapping[str, str],
        directory: str | None = None,
        idle_timeout: float = 600.0,
        start_timeout: float = 300.0,
    ) -> None:
        self.python = python
        self.location = location
        self.cwd = cwd
        self.server_env = dict(server_env)
        self.idle_timeout = idle_timeout
        self.start_timeout = start_timeout
        key = server_key(python, location.to_dict(), cwd, env_option)
        self.files = ServerFiles(runtime_dir(directory), key)
        self.cancelled = False
        self._waiting: socket.socket | None = None

    def cancel(self) -> None:
        """Called by kill(): stop waiting for the server, start nothing."""
        self.cancelled = True
        if self._waiting is not None:
            with contextlib.suppress(OSError):
                self._waiting.shutdown(socket.SHUT_RDWR)

    def open_step(self, log: logging.Logger) -> WarmStep:
        """A connection the server accepted a step on."""
        try:
            ensure_private_dir(self.files.directory)
        except OSError as exc:
            raise StepServerUnavailable(str(exc.strerror or exc)) from exc
        except UntrustedFolderError as exc:
            raise StepServerUnavailable(str(exc).rstrip(".")) from exc
        if len(str(self.files.socket)) > MAX_SOCKET_PATH:
            raise StepServerUnavailable(
                f"its socket path {str(self.files.socket)!r} is longer than {MAX_SOCKET_PATH} "
                "bytes; set the runner's runtime_dir option to a shorter directory"
            )
        problem = "it did not answer"
        for _ in range(_ATTEMPTS):
            began = time.monotonic()
            try:
                sock, spawned = self._connect_or_start()
            except _Retry as exc:
                problem = str(exc)
                continue
            self._waiting = sock
            try:
                if self.cancelled:
                    raise StepCancelled()
                send_frame(sock, {"op": "run"})
                sock.settimeout(self.start_timeout)
                reply, _ = recv_frame(sock)
            except OSError as exc:
                if self.cancelled:
                    raise StepCancelled() from exc
                sock.close()
                problem = f"it broke the connection: {exc}"
                continue
            if reply is None or self.cancelled:
                sock.close()
                if self.cancelled:
                    raise StepCancelled()
                problem = "it closed the connection without an answer"
                continue
            if "accepted" in reply:
                self._waiting = None  # the step's own kill() takes over from here
                if spawned:
                    log.info(
                        "Started step server %s for %s with %s in %.1f s",
                        reply["accepted"],
                        self.location.describe(),
                        self.python,
                        time.monotonic() - began,
                    )
                return WarmStep(sock, int(reply["accepted"]))
            sock.close()
            if "reload" in reply:
                log.info("Step server reloads the code location: %s", reply["reload"])
                continue
            if "error" in reply:
                error = reply["error"]
                raise StepServerUnavailable(f"it could not load the code location: {error}")
            problem = f"it answered {reply!r}"
        raise StepServerUnavailable(problem)

    def _connect_or_start(self) -> tuple[socket.socket, bool]:
        try:
            return connect(self.files.socket, timeout=10), False
        except (FileNotFoundError, ConnectionRefusedError):
            pass  # none running (a refused socket is a crashed server's): start one
        except OSError as exc:
            where = str(self.files.socket)
            raise StepServerUnavailable(f"cannot connect to {where!r}: {exc}") from exc
        self._spawn()
        try:
            return connect(self.files.socket, timeout=10), True
        except OSError as exc:
            # Another server holds the key: one starting (it binds in a moment) or one exiting
            # (idle, stopped; the next attempt starts a new one once it is gone).
            deadline = time.monotonic() + 10
            while self.files.held() and time.monotonic() < deadline:
                try:
                    connect(self.files.socket, timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.02)
            raise _Retry(f"it did not listen after starting: {exc}") from exc

    def _spawn(self) -> None:
        """Start a server and wait until it listens (or found another one listening)."""
        command = [
            self.python,
            "-m",
            "dagster_airflow.step_server.server",
            "--runtime-dir",
            str(self.files.directory),
            "--key",
            self.files.key,
            "--code-location",
            json.dumps(self.location.to_dict()),
            "--idle-timeout",
            str(self.idle_timeout),
        ]
        log_fd = os.open(self.files.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            starter = subprocess.Popen(
                command,
                env=self.server_env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                start_new_session=True,  # not in the task's process group: it outlives the task
            )
            code = starter.wait(60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StepServerUnavailable(f"cannot start it with {self.python!r}: {exc}") from exc
        finally:
            os.close(log_fd)
        if code not in (0, EXIT_ALREADY_RUNNING):
            raise StepServerUnavailable(
                f"it exited with code {code} as it started; see {str(self.files.log)!r}"
            )


class WarmStep:
    """One step on an accepted connection: its process, its output, its exit code."""

    def __init__(self, sock: socket.socket, server_pid: int) -> None:
        self.sock = sock
        self.server_pid = server_pid
        self.pid: int | None = None
        self._pidfd: int | None = None
        self.finished = False
        self.cancelled = False
        self._killing = False
        self._reading = False
        self._stream = io.StringIO()
        self._stream.close()
        self._feed: Callable[[str], object] = lambda line: None

    def run(
        self,
        env: Mapping[str, str],
        cwd: str,
        kill_timeout: float,
        feed: Callable[[str], object],
        log: logging.Logger,
    ) -> int | None:
        """Run the step; its exit code (negative: the signal that ended it). Raises
        StepServerUnavailable when the step could not start."""
        read_end, write_end = os.pipe()
        try:
            if self.cancelled:
                raise StepCancelled()
            try:
                send_frame(
                    self.sock,
                    {"env": dict(env), "cwd": cwd, "kill_timeout": kill_timeout},
                    [write_end],
                )
            finally:
                os.close(write_end)
            self.sock.settimeout(60)
            reply, _ = recv_frame(self.sock)
        except OSError as exc:
            os.close(read_end)
            self.close()
            if self.cancelled:
                raise StepCancelled() from exc
            raise StepServerUnavailable(f"it did not start the step: {exc}") from exc
        if not reply or "pid" not in reply:
            os.close(read_end)
            self.close()
            if self.cancelled:
                raise StepCancelled()
            raise StepServerUnavailable(f"it did not start the step (answer {reply!r})")
        self.pid = int(reply["pid"])
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except OSError:
            self._pidfd = None  # it has already exited
        log.info("Step process %s started (forked by step server %s)", self.pid, self.server_pid)
        self._feed = feed
        self._stream = open(read_end, encoding="utf-8", errors="replace")  # noqa: SIM115
        self._reading = True
        try:
            for line in self._stream:
                feed(line)
        finally:
            self._reading = False
        self._stream.close()
        self.sock.settimeout(None)
        try:
            reply, _ = recv_frame(self.sock)
        except OSError:
            reply = None
        self.close()
        if reply is None or "exit" not in reply:
            log.error(
                "The step server's watcher of step process %s went away before reporting its "
                "exit code",
                self.pid,
            )
            return None
        return int(reply["exit"])

    def kill(self, kill_timeout: float) -> None:
        """SIGTERM the step's process group through its supervisor; SIGKILL it after
        ``kill_timeout``. Waits until the step is gone."""
        if self.finished:
            return
        if self.pid is None:  # not started yet: it never will
            self.cancelled = True
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            return
        self._killing = True
        # Airflow's execution_timeout raises inside run() and only then calls on_kill: nobody
        # reads the step's output any more, so read the rest here, or its last words (that it
        # was stopped) never reach the task log.
        drain = None
        if not self._reading and not self._stream.closed:
            drain = threading.Thread(target=self._drain, name="step-output", daemon=True)
            drain.start()
        try:
            send_frame(self.sock, {"op": "kill"})
        except OSError:
            self._signal(signal.SIGTERM)
        if not self._wait_gone(kill_timeout + 5):
            self._signal(signal.SIGKILL)
            self._wait_gone(5)
        if drain is not None:
            drain.join(kill_timeout)
        self._killing = False
        if drain is not None:  # run() was abandoned: nobody else will close the connection
            self.close()
        elif self.finished:
            self._close_pidfd()

    def _drain(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # closed meanwhile
            for line in self._stream:
                self._feed(line)
            self._stream.close()

    def _signal(self, sig: int) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, sig)

    def _wait_gone(self, timeout: float) -> bool:
        if self._pidfd is None:
            return True
        try:
            readable, _, _ = select.select([self._pidfd], [], [], timeout)
        except (OSError, ValueError):  # closed meanwhile by run(): the step ended
            return True
        return bool(readable)

    def close(self) -> None:
        self.finished = True
        self.sock.close()
        if not self._killing:
            self._close_pidfd()

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            fd, self._pidfd = self._pidfd, None
            os.close(fd)
