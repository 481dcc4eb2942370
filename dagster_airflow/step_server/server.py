"""The step server: a resident process that has imported Dagster and loaded one code location,
and forks one process per step (``python -m dagster_airflow.step_server.server``).

Three kinds of process, so that the server never holds a step's request or credentials and a
step outlives a reload of the server:

- the server: accepts a connection, reads a small ``run`` message (no request, no credentials),
  checks that the code location's files have not changed (else it re-executes itself and asks
  the client to connect again), forks a supervisor and forgets the connection;
- the supervisor (one per step): reads the request's environment, working directory and output
  descriptor from the connection, forks the step, relays a kill, stops the step when the
  client's connection drops (the Airflow task process died), and sends back the exit code; it
  is the step's subreaper (runners/reaper.py), so it ends every process the step left behind;
- the step: its own session, environment, working directory and output streams, then
  ``dagster-airflow execute-step`` exactly as a fresh process runs it.

Dagster-side module: it imports Dagster and the user's code once loaded, never Airflow.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import json
import os
import select
import selectors
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster_airflow.errors import UntrustedFolderError
from dagster_airflow.step_server.protocol import (
    ProtocolError,
    ServerFiles,
    decode_frame,
    ensure_private_dir,
    process_identity,
    recv_frame,
    send_frame,
)

EXIT_ALREADY_RUNNING = 3
EXIT_UNTRUSTED_DIR = 2
_ACCEPT_TICK = 1.0  # seconds between checks of the idle timeout
# How long a connection may take to say what it wants. It delays no other client (each
# connection is served on its own), so this only reclaims the descriptor of a silent one.
HELLO_TIMEOUT = 60.0
_MAX_HELLO = 64 * 1024  # a hello is a few bytes: it never holds a request


def _say(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} [{os.getpid()}] {message}", file=sys.stderr)
    sys.stderr.flush()


def _bind(path: Path) -> socket.socket:
    """Listen on ``path`` with 0600 permissions (the caller holds the key's lock)."""
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(umask)
    os.chmod(path, 0o600)
    listener.listen(128)
    return listener


def _under(path: str, roots: list[str]) -> bool:
    return any(path.startswith(root + os.sep) for root in roots)


class Freshness:
    """The files a loaded code location came from, and whether any changed since."""

    def __init__(self, location, cwd: str) -> None:
        self.location = location
        self.cwd = cwd
        self.stats: dict[str, tuple[int, int, int] | None] = {}
        for path in self._own_files():
            self.stats[path] = self._stat(path)

    @staticmethod
    def _stat(path: str) -> tuple[int, int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _own_files(self) -> list[str]:
        location = self.location
        return [
            os.path.abspath(p) for p in (location.python_file, location.workspace) if p is not None
        ]

    def record_loaded_modules(self) -> None:
        """After loading: every module imported from the working directory, the file's folder,
        the code location's package and dagster-airflow itself (not from site-packages)."""
        import dagster_airflow

        location = self.location
        roots = [os.path.abspath(location.working_directory or self.cwd)]
        if location.python_file:
            roots.append(os.path.dirname(os.path.abspath(location.python_file)))
        package_roots = [os.path.dirname(os.path.abspath(dagster_airflow.__file__))]
        if location.module_name:
            top = sys.modules.get(location.module_name.split(".")[0])
            if getattr(top, "__file__", None):
                package_roots.append(os.path.dirname(os.path.abspath(top.__file__)))
        installed = tuple(
            os.path.realpath(p) + os.sep for p in {sys.prefix, sys.base_prefix, sys.exec_prefix}
        )
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if not isinstance(path, str) or path in self.stats:
                continue
            path = os.path.abspath(path)
            installed_here = (
                os.path.realpath(path).startswith(installed)
                or "site-packages" in path
                or "dist-packages" in path
            )
            if _under(path, package_roots) or (_under(path, roots) and not installed_here):
                self.stats[path] = self._stat(path)

    def changed(self) -> str | None:
        for path, recorded in self.stats.items():
            if self._stat(path) != recorded:
                return f"{path!r} changed"
        return None


class Greeting:
    """A connection whose first message is still arriving, read without blocking."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.data = b""
        self.deadline = time.monotonic() + HELLO_TIMEOUT

    def read(self) -> dict[str, Any] | None:
        """The message once it has all arrived, else None; OSError when the client closed or
        broke the protocol."""
        try:
            chunk = self.conn.recv(_MAX_HELLO)
        except (BlockingIOError, InterruptedError):
            return None
        if not chunk:
            raise ProtocolError(errno.EPIPE, "it closed the connection before saying anything")
        self.data += chunk
        return decode_frame(self.data, _MAX_HELLO)


class StepServer:
    def __init__(self, args: argparse.Namespace, lock_fd: int, listener: socket.socket) -> None:
        from dagster_airflow.model import CodeLocation

        self.args = args
        self.files = ServerFiles(Path(args.runtime_dir), args.key)
        self.lock_fd = lock_fd
        self.listener = listener
        self.location = CodeLocation.from_dict(json.loads(args.code_location))
        self.idle_timeout = float(args.idle_timeout)
        self.started = float(args.started or time.time())
        self.steps = int(args.steps)
        self.last_used = time.monotonic()
        self.load_error: str | None = None
        self.load_seconds = 0.0
        self.freshness = Freshness(self.location, os.getcwd())
        self.selector = selectors.DefaultSelector()
        self.greetings: dict[socket.socket, Greeting] = {}

    def load(self) -> None:
        """Import Dagster and the code location, and warm what every step needs."""
        began = time.monotonic()
        try:
            from dagster_airflow.job.code_location import preload

            preload(self.location)
            _warm()
        except Exception as exc:
            root = exc
            while root.__cause__ is not None:
                root = root.__cause__
            self.load_error = str(exc)
            _say(f"could not load {self.location.describe()}: {type(root).__name__}: {root}")
        self.freshness.record_loaded_modules()
        self.load_seconds = time.monotonic() - began
        self.last_used = time.monotonic()  # the idle clock starts once the server can serve
        threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        if threads:
            _say(f"warning: threads running at fork time, which steps will not have: {threads}")
        _say(
            f"loaded {self.location.describe()} in {self.load_seconds:.2f} s; watching "
            f"{len(self.freshness.stats)} files"
        )

    def write_info(self) -> None:
        info = {
            "pid": os.getpid(),
            "key": self.files.key,
            "python": sys.executable,
            "code_location": self.location.to_dict(),
            "cwd": os.getcwd(),
            "idle_timeout": self.idle_timeout,
            "started": self.started,
            # What `servers --stop` compares with the live process before it signals a pid.
            "identity": process_identity(os.getpid()),
        }
        tmp = self.files.info.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(info))
        os.chmod(tmp, 0o600)
        tmp.replace(self.files.info)

    def serve(self) -> None:
        """Serve every connection on its own: a selector reads each client's first message as
        it arrives, so a client that connects and says nothing delays no other."""
        signal.signal(signal.SIGTERM, _exit_on_signal)
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ)
        try:
            while True:
                children = self._reap()
                idle = time.monotonic() - self.last_used
                quiet = not children and not self.greetings
                if self.idle_timeout > 0 and idle > self.idle_timeout and quiet:
                    _say(f"idle for {idle:.0f} s: exiting")
                    return
                for key, _ in self.selector.select(self._tick()):
                    if key.fileobj is self.listener:
                        self._accept()
                    else:
                        self._read(key.data)
                self._drop_silent()
        finally:
            # Only the lock holder touches the socket path, so this cannot remove a successor's.
            self.files.socket.unlink(missing_ok=True)
            self.files.info.unlink(missing_ok=True)

    def _tick(self) -> float:
        deadlines = [g.deadline for g in self.greetings.values()]
        return max(0.0, min([_ACCEPT_TICK, *(d - time.monotonic() for d in deadlines)]))

    def _reap(self) -> bool:
        """Reap finished supervisors; whether any is still running."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            # The socket is 0600 in a 0700 directory; still, serve only this user's processes.
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _, uid, _ = struct.unpack("3i", creds)
            if uid != os.getuid():
                _say(f"refused a connection from uid {uid}")
                conn.close()
                continue
            conn.setblocking(False)
            greeting = Greeting(conn)
            self.greetings[conn] = greeting
            self.selector.register(conn, selectors.EVENT_READ, greeting)

    def _forget(self, greeting: Greeting) -> None:
        self.selector.unregister(greeting.conn)
        del self.greetings[greeting.conn]

    def _read(self, greeting: Greeting) -> None:
        try:
            hello = greeting.read()
        except OSError as exc:
            self._forget(greeting)
            greeting.conn.close()
            if not isinstance(exc, ProtocolError) or exc.errno != errno.EPIPE:
                _say(f"dropped a client: {exc}")
            return
        if hello is None:
            return
        self._forget(greeting)
        with greeting.conn as conn:
            conn.setblocking(True)
            conn.settimeout(10)  # replies are small; a client that never reads them is dropped
            self._handle(conn, hello)

    def _drop_silent(self) -> None:
        now = time.monotonic()
        for greeting in [g for g in self.greetings.values() if g.deadline <= now]:
            self._forget(greeting)
            greeting.conn.close()
            _say(f"dropped a client that said nothing for {HELLO_TIMEOUT:.0f} s")

    def close_in_child(self) -> None:
        """In a forked supervisor: let go of what is the server's (its socket, lock, and the
        connections still greeting it), so no step holds them."""
        for conn in self.greetings:
            conn.close()
        self.selector.close()
        self.listener.close()
        os.close(self.lock_fd)

    def _handle(self, conn: socket.socket, hello: dict[str, Any]) -> None:
        op = hello.get("op")
        try:
            if op == "status":
                send_frame(conn, self._status())
            elif op == "stop":
                send_frame(conn, {"stopping": os.getpid()})
                raise SystemExit(0)
            elif op == "run":
                self._run(conn)
        except OSError as exc:
            _say(f"a client went away: {exc}")

    def _status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "steps": self.steps,
            "idle_seconds": round(time.monotonic() - self.last_used, 1),
            "load_seconds": round(self.load_seconds, 3),
            "load_error": self.load_error,
            "watched_files": len(self.freshness.stats),
        }

    def _run(self, conn: socket.socket) -> None:
        self.last_used = time.monotonic()
        changed = self.freshness.changed()
        if changed:
            send_frame(conn, {"reload": changed})
            conn.close()
            self._reexec(changed)
        if self.load_error:
            send_frame(conn, {"error": self.load_error})
            return
        send_frame(conn, {"accepted": os.getpid()})
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                code = _supervise(conn, self)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        self.steps += 1

    def _reexec(self, reason: str) -> None:
        """Reload by becoming a new server in this process: same pid, socket and lock."""
        _say(f"{reason}: reloading")
        os.set_inheritable(self.listener.fileno(), True)
        os.set_inheritable(self.lock_fd, True)
        argv = [
            sys.executable,
            "-m",
            "dagster_airflow.step_server.server",
            *_base_args(self.args),
            "--listen-fd",
            str(self.listener.fileno()),
            "--lock-fd",
            str(self.lock_fd),
            "--started",
            repr(self.started),
            "--steps",
            str(self.steps),
        ]
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, argv)


def _warm() -> None:
    """Import what the worker imports for every step, and build the ephemeral instance each
    forked step takes a copy of (worker/instance.py), so a forked step starts where a fresh one
    would be after seconds of imports and instance building."""
    import dagster_airflow.job.compile
    import dagster_airflow.job.dagster_compat  # the private APIs a step plans and runs with
    import dagster_airflow.worker.entry
    import dagster_airflow.worker.execute
    import dagster_airflow.worker.io_manager
    import dagster_airflow.worker.run_state  # noqa: F401
    from dagster_airflow.plugins.manager import get_plugins
    from dagster_airflow.worker.instance import prepare_ephemeral_instance

    get_plugins().load_builtins("storage")  # imported once here, not in each forked step
    prepare_ephemeral_instance()


def _exit_on_signal(signum, frame) -> None:
    raise SystemExit(0)


def _supervise(conn: socket.socket, server: StepServer) -> int:
    """In the supervisor: take the step's environment and output, fork the step, watch it."""
    from dagster_airflow.reaper import (
        StepReaper,
        become_subreaper,
        signal_pipe,
        signals_arrived,
    )

    server.close_in_child()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # The supervisor outlives the step's own code: every process the step starts, a daemon
    # that left its session included, is re-parented here when orphaned and ended with it.
    become_subreaper()
    conn.settimeout(30)
    payload, fds = recv_frame(conn, maxfds=1)
    if payload is None or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        return 71
    out_fd = fds[0]
    kill_timeout = float(payload.get("kill_timeout", 10.0))
    supervisor = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _run_step(payload, out_fd, conn, supervisor)
    payload = None  # the step has its request and credentials; nothing here keeps them
    send_frame(conn, {"pid": pid})
    reaper = StepReaper(pid, kill_timeout)
    orphan_ended = signal_pipe([signal.SIGCHLD])  # reap orphans as they end, not at the end
    conn.settimeout(None)
    watched: list[Any] = [fd for fd in (conn, reaper.pidfd, orphan_ended) if fd is not None]
    while not reaper.reap():
        readable, _, _ = select.select(watched, [], [], reaper.wait_seconds())
        signals_arrived(orphan_ended)
        if conn in readable:
            try:
                message, _ = recv_frame(conn)
            except (OSError, ProtocolError):
                message = None
            if message is None:
                # The client's end closed: the Airflow task process is gone (even by SIGKILL).
                # Stop the step at once, as a fresh step dies with its parent.
                reaper.kill()
                watched.remove(conn)
            elif message.get("op") == "kill":
                reaper.terminate()
        reaper.tick()
    # The step's output pipe stays open here until what the step left is ended: the line
    # that says so is its last, and the client reads the exit code only after that.
    code = reaper.finish(out_fd)
    os.close(out_fd)
    with contextlib.suppress(OSError):
        send_frame(conn, {"exit": code})
    return 0


def _run_step(payload: dict[str, Any], out_fd: int, conn: socket.socket, supervisor: int) -> None:
    """In the step's own process: become what a fresh `execute-step` process is, and run."""
    code = 70
    try:
        os.setsid()  # its own process group, so a kill stops everything the step started
        from dagster_airflow.reaper import die_with_parent

        die_with_parent(supervisor)
        conn.close()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.close(out_fd)
        os.chdir(payload["cwd"])
        os.environ.clear()
        os.environ.update(payload["env"])
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        sys.argv = [sys.argv[0], "execute-step"]
        from dagster_airflow.worker.entry import main

        code = main()  # ends the process itself, as a fresh worker does
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
    os._exit(code)


def _base_args(args: argparse.Namespace) -> list[str]:
    return [
        "--runtime-dir",
        args.runtime_dir,
        "--key",
        args.key,
        "--code-location",
        args.code_location,
        "--idle-timeout",
        str(args.idle_timeout),
    ]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dagster_airflow.step_server.server")
    parser.add_argument("--runtime-dir", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--code-location", required=True, help="the CodeLocation as JSON")
    parser.add_argument("--idle-timeout", type=float, default=600.0)
    # Set when the server re-executes itself to reload: it keeps its socket and lock.
    parser.add_argument("--listen-fd", type=int)
    parser.add_argument("--lock-fd", type=int)
    parser.add_argument("--started", type=float)
    parser.add_argument("--steps", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    files = ServerFiles(Path(args.runtime_dir), args.key)
    try:
        ensure_private_dir(files.directory)
    except (OSError, UntrustedFolderError) as exc:
        _say(str(exc))
        return EXIT_UNTRUSTED_DIR
    if args.listen_fd is None:
        lock_fd = os.open(files.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return EXIT_ALREADY_RUNNING  # another server has this key, or is starting
        listener = _bind(files.socket)
        # The starter (a client waiting for this process) returns now; the server lives on,
        # holding the lock, in the session the client gave it.
        if os.fork():
            os._exit(0)
    else:
        lock_fd = args.lock_fd
        listener = socket.socket(fileno=args.listen_fd)
        os.set_inheritable(lock_fd, False)
        os.set_inheritable(listener.fileno(), False)
    server = StepServer(args, lock_fd, listener)
    server.write_info()
    server.load()
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
