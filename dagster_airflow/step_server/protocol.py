"""Where step servers live, how they are named, and the frames on their socket (stdlib only).

One server per (interpreter, code location, working directory, runner ``env``) and user. Its
files sit in the user's runtime directory, named by a key hashed from those: ``KEY.sock`` (the
socket, 0600), ``KEY.lock`` (held by the server for its whole life: at most one server per key),
``KEY.json`` (who it is) and ``KEY.log`` (what it printed).

A frame is a 4-byte big-endian length and that many bytes of JSON; file descriptors ride along
as SCM_RIGHTS on a frame's first byte.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import select
import signal
import socket
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from dagster_airflow.files import trusted_folder

RUNTIME_DIR_ENV_VAR = "DAGSTER_AIRFLOW_RUNTIME_DIR"
_HEADER = struct.Struct(">I")
_MAX_FRAME = 64 * 1024 * 1024
# sockaddr_un.sun_path is 108 bytes, its terminating NUL included.
MAX_SOCKET_PATH = 107


class ProtocolError(OSError):
    """The other end broke the protocol or went away."""


def runtime_dir(override: str | None = None) -> Path:
    """The user's directory for step servers: ``override``, $DAGSTER_AIRFLOW_RUNTIME_DIR,
    $XDG_RUNTIME_DIR/dagster-airflow or /tmp/dagster-airflow-UID (created 0700)."""
    chosen = override or os.environ.get(RUNTIME_DIR_ENV_VAR)
    if chosen:
        return Path(chosen)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return Path(xdg) / "dagster-airflow"
    return Path(f"/tmp/dagster-airflow-{os.getuid()}")


RUNTIME_DIR_FIX = (
    f"set ${RUNTIME_DIR_ENV_VAR} (or the subprocess runner's runtime_dir option) to a folder "
    "of your own"
)


def ensure_private_dir(path: Path, create: bool = True) -> Path:
    """``path``, created 0700 if need be; refused (UntrustedFolderError) when another user owns
    it or a folder on its way, or others can enter it. OSError when it cannot be made."""
    what = "the step servers' runtime directory"
    try:
        return trusted_folder(path, what, RUNTIME_DIR_FIX, private=True, create=create)
    except OSError as exc:
        where = exc.filename or str(path)
        raise OSError(
            exc.errno, f"{what} {str(path)!r} cannot be used: {where!r}: {exc.strerror}"
        ) from exc


def server_key(python: str, location: Mapping[str, Any], cwd: str, env: Mapping[str, str]) -> str:
    text = json.dumps(
        {"python": python, "location": dict(location), "cwd": cwd, "env": dict(env)},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@attrs.frozen
class ServerFiles:
    directory: Path
    key: str

    @property
    def socket(self) -> Path:
        return self.directory / f"{self.key}.sock"

    @property
    def lock(self) -> Path:
        return self.directory / f"{self.key}.lock"

    @property
    def info(self) -> Path:
        return self.directory / f"{self.key}.json"

    @property
    def log(self) -> Path:
        return self.directory / f"{self.key}.log"

    def held(self) -> bool:
        """Whether a server holds this key's lock (is alive, or starting)."""
        try:
            fd = os.open(self.lock, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


def send_frame(sock: socket.socket, message: Mapping[str, Any], fds: list[int] = ()) -> None:
    body = json.dumps(message).encode()
    data = _HEADER.pack(len(body)) + body
    if fds:
        sent = socket.send_fds(sock, [data], list(fds))
        data = data[sent:]
    if data:
        sock.sendall(data)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(left)
        if not chunk:
            raise ProtocolError(errno.EPIPE, "the connection closed in the middle of a message")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket, maxfds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
    """One message and the descriptors that came with it; (None, []) when the peer closed."""
    fds: list[int] = []
    if maxfds:
        head, fds, _, _ = socket.recv_fds(sock, _HEADER.size, maxfds)
    else:
        head = sock.recv(_HEADER.size)
    if not head:
        return None, fds
    if len(head) < _HEADER.size:
        head += _recv_exactly(sock, _HEADER.size - len(head))
    (size,) = _HEADER.unpack(head)
    _check_size(size, _MAX_FRAME)
    return _decode(_recv_exactly(sock, size)), fds


def decode_frame(data: bytes, max_size: int) -> dict[str, Any] | None:
    """The message at the start of ``data`` (bytes read so far without blocking), or None when
    it has not all arrived; ProtocolError when it is larger than ``max_size`` or not JSON."""
    if len(data) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(data[: _HEADER.size])
    _check_size(size, max_size)
    if len(data) < _HEADER.size + size:
        return None
    return _decode(data[_HEADER.size : _HEADER.size + size])


def _check_size(size: int, max_size: int) -> None:
    if size > max_size:
        raise ProtocolError(errno.EPROTO, f"a message of {size} bytes is too large")


def _decode(body: bytes) -> dict[str, Any]:
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise ProtocolError(errno.EPROTO, f"a message that is not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise ProtocolError(errno.EPROTO, f"a message that is not an object: {message!r}")
    return message


def connect(path: Path, timeout: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        raise
    return sock


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def memory_kib(pid: int) -> dict[str, int]:
    """Resident and unique set size (kiB) of a process, from /proc/PID/smaps_rollup."""
    fields = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                name, _, rest = line.partition(":")
                if rest.strip().endswith("kB"):
                    fields[name] = int(rest.split()[0])
    except OSError:
        return {}
    return {
        "rss": fields.get("Rss", 0),
        "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
        "pss": fields.get("Pss", 0),
    }


SERVER_MODULE = "dagster_airflow.step_server.server"


def process_identity(pid: int) -> dict[str, Any] | None:
    """What tells a process from a later one with the same pid: its start time (clock ticks
    after boot, /proc/PID/stat field 22), its command line and its user; None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the name in parentheses may hold spaces
    argv = [arg.decode(errors="replace") for arg in cmdline.split(b"\0")[:-1]]
    return {"start_time": int(fields[19]), "cmdline": argv, "uid": uid}


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv[:-1] else None


@attrs.frozen
class RunningServer:
    files: ServerFiles
    pid: int
    info: dict[str, Any]

    def unverified(self) -> str | None:
        """Why process ``pid`` is not provably the step server that wrote this info file (its
        pid reused, or the file names some other process); None when it is."""
        now = process_identity(self.pid)
        if now is None:
            return "it is gone"
        recorded = self.info.get("identity")
        if not isinstance(recorded, dict):
            return "the file records no start time and command line for it"
        if recorded.get("start_time") != now["start_time"]:
            return "it started at another time than the server that wrote the file"
        argv = now["cmdline"]
        if recorded.get("cmdline") != argv:
            return f"its command line {' '.join(argv)!r} is not the one the server recorded"
        if now["uid"] != os.geteuid():
            return f"it runs as uid {now['uid']}, not as this user"
        runtime_dir = _option(argv, "--runtime-dir")
        try:
            # A relative --runtime-dir is relative to the server's own working directory.
            here = runtime_dir and os.path.samefile(
                os.path.join(f"/proc/{self.pid}/cwd", runtime_dir), self.files.directory
            )
        except OSError:
            here = False
        if SERVER_MODULE not in argv or _option(argv, "--key") != self.files.key or not here:
            return f"its command line {' '.join(argv)!r} is not this key's step server's"
        return None

    def status(self, timeout: float = 2.0) -> dict[str, Any]:
        """The server's own account (steps served, idle since), or {} when it does not answer."""
        try:
            with connect(self.files.socket, timeout) as sock:
                send_frame(sock, {"op": "status"})
                reply, _ = recv_frame(sock)
        except OSError:
            return {}
        return reply or {}

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop the server by its pid (SIGTERM, then SIGKILL); True once it is gone, False when
        it is still there or not provably a step server (``unverified``: nothing is sent to
        it). Steps it forked and still running finish on their own."""
        if not self.files.held() or not alive(self.pid):
            return True
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return True
        try:
            # Checked after the pidfd is open: the process it names is the one checked, even
            # if the pid is reused meanwhile.
            if self.unverified():
                return False
            signal.pidfd_send_signal(pidfd, signal.SIGTERM)
            if not select.select([pidfd], [], [], timeout)[0]:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                select.select([pidfd], [], [], 5)
        except ProcessLookupError:
            pass  # gone meanwhile
        finally:
            os.close(pidfd)
        # Exited but not yet reaped by its parent is gone too.
        deadline = time.monotonic() + 5
        while alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        return not alive(self.pid)


def running_servers(directory: Path | None = None) -> list[RunningServer]:
    """The servers alive in a runtime directory (default: this user's). Refused
    (UntrustedFolderError) when another user could have written that directory."""
    directory = directory or runtime_dir()
    if not os.path.lexists(directory):
        return []
    ensure_private_dir(directory, create=False)
    found = []
    for info_path in sorted(directory.glob("*.json")):
        files = ServerFiles(directory, info_path.stem)
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError):
            continue
        pid = info.get("pid") if isinstance(info, dict) else None
        if isinstance(pid, int) and files.held() and alive(pid):
            found.append(RunningServer(files, pid, info))
    return found


def stop_servers(directory: Path | None = None) -> list[int]:
    """Stop every server in a runtime directory by its pid, each once proven to be that
    directory's step server; the pids stopped."""
    stopped = []
    for server in running_servers(directory):
        if server.stop():
            stopped.append(server.pid)
    return stopped
