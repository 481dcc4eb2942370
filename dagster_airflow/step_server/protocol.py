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
import signal
import socket
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

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


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` 0700 if need be; refuse one another user owns or others can enter."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
    except OSError as exc:
        raise OSError(exc.errno, f"cannot create the runtime directory {str(path)!r}") from exc
    if not path.is_dir() or path.is_symlink():
        raise OSError(errno.ENOTDIR, f"the runtime directory {str(path)!r} is not a directory")
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(
            errno.EACCES,
            f"the runtime directory {str(path)!r} is not private to this user (owner "
            f"{info.st_uid}, mode {oct(info.st_mode & 0o777)}); chmod 700 it or remove it",
        )
    return path


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
    if size > _MAX_FRAME:
        raise ProtocolError(errno.EPROTO, f"a message of {size} bytes is too large")
    try:
        message = json.loads(_recv_exactly(sock, size))
    except ValueError as exc:
        raise ProtocolError(errno.EPROTO, f"a message that is not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise ProtocolError(errno.EPROTO, f"a message that is not an object: {message!r}")
    return message, fds


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


@attrs.frozen
class RunningServer:
    files: ServerFiles
    pid: int
    info: dict[str, Any]

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
        """Stop the server by its pid (SIGTERM, then SIGKILL); True once it is gone. Steps it
        forked and still running finish on their own."""
        if not self.files.held() or not alive(self.pid):
            return True
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)
            while alive(self.pid) and time.monotonic() < deadline + 5:
                time.sleep(0.05)
        return not alive(self.pid)


def running_servers(directory: Path | None = None) -> list[RunningServer]:
    """The servers alive in a runtime directory (default: this user's)."""
    directory = directory or runtime_dir()
    found = []
    for info_path in sorted(directory.glob("*.json")) if directory.is_dir() else ():
        files = ServerFiles(directory, info_path.stem)
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError):
            continue
        pid = info.get("pid")
        if isinstance(pid, int) and files.held() and alive(pid):
            found.append(RunningServer(files, pid, info))
    return found


def stop_servers(directory: Path | None = None) -> list[int]:
    """Stop every server in a runtime directory by its pid; the pids stopped."""
    stopped = []
    for server in running_servers(directory):
        server.stop()
        stopped.append(server.pid)
    return stopped
