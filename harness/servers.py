"""Real storage servers for tests and benchmarks: moto (S3, ECS) and gcp-storage-emulator (GCS).

Each server listens on 127.0.0.1 on a free port, runs in its own process session, is ready when
it answers HTTP, and is stopped by its own pid (its process group), never by name::

    with moto_server() as endpoint:          # "http://127.0.0.1:PORT"
        boto3.client("s3", endpoint_url=endpoint, ...)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

HOST = "127.0.0.1"
# Dummy credentials moto accepts; never real ones.
MOTO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class LoopbackServer:
    """A server process in its own session on 127.0.0.1:port."""

    def __init__(
        self,
        command: list[str],
        port: int,
        ready_path: str = "/",
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.command = command
        self.port = port
        self.ready_path = ready_path
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 60.0) -> str:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.command[0]} exited with {self.process.returncode} before it was ready"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=2):
                    return self.url
            except urllib.error.HTTPError:
                return self.url  # it answers: ready, whatever it thinks of the path
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.command[0]} did not answer on {self.url} in {timeout:.0f} s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # Our own session: signal its process group, found by our child's pid.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def moto(env: Mapping[str, str] | None = None, log_path: Path | None = None) -> LoopbackServer:
    """moto server (S3, ECS, IAM, CloudWatch Logs ...). ``env`` may set, for example,
    ``INITIAL_NO_AUTH_ACTION_COUNT`` to make it check credentials."""
    port = free_port()
    command = [_bin("moto_server"), "-H", HOST, "-p", str(port)]
    return LoopbackServer(command, port, "/moto-api/", env, log_path)


def gcs_emulator(log_path: Path | None = None) -> LoopbackServer:
    """gcp-storage-emulator, in memory."""
    port = free_port()
    command = [
        _bin("gcp-storage-emulator"),
        "start",
        f"--host={HOST}",
        f"--port={port}",
        "--in-memory",
    ]
    return LoopbackServer(command, port, "/storage/v1/b", None, log_path)


@contextlib.contextmanager
def moto_server(**kwargs) -> Iterator[str]:
    """A running moto server's endpoint URL, ``http://127.0.0.1:PORT``."""
    with moto(**kwargs) as url:
        yield url


@contextlib.contextmanager
def gcs_emulator_server(**kwargs) -> Iterator[str]:
    """A running gcp-storage-emulator's endpoint URL (for STORAGE_EMULATOR_HOST)."""
    with gcs_emulator(**kwargs) as url:
        yield url
