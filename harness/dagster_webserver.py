"""A real dagster-webserver on a loopback port, with its own DAGSTER_HOME, for tests.

Runs launch through the DefaultRunCoordinator (no daemon needed) and the DefaultRunLauncher
(each run in a subprocess of the code server). The server runs in its own process session and is
stopped by its own process group, which holds the code server and the run workers too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

DAGSTER_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
run_launcher:
  module: dagster._core.launcher
  class: DefaultRunLauncher
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DagsterWebserver:
    """``dagster-webserver`` serving a code location, as ``-f file.py -d dir`` or ``-w yaml``.

    with DagsterWebserver(tmp, ["-f", "jobs.py", "-d", "."]) as server:
        server.url  # http://127.0.0.1:PORT
    """

    def __init__(
        self,
        home: Path,
        target: Sequence[str],
        python: str = sys.executable,
        env: dict[str, str] | None = None,
        startup_timeout: float = 120.0,
        dagster_yaml: str = DAGSTER_YAML,
    ) -> None:
        self.home = Path(home)
        self.target = list(target)
        self.python = python
        self.env = env or {}
        self.startup_timeout = startup_timeout
        # The instance's settings: a team's (PostgreSQL) instance, or the default's.
        self.dagster_yaml = dagster_yaml
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.log_path = self.home / "webserver.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> DagsterWebserver:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text(self.dagster_yaml)
        self.port = free_port()
        command = [
            str(Path(self.python).parent / "dagster-webserver"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            *self.target,
        ]
        env = {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "DAGSTER_DISABLE_TELEMETRY": "1",
            **self.env,
        }
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"dagster-webserver exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"dagster-webserver not ready in {self.startup_timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass

    def __enter__(self) -> DagsterWebserver:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
