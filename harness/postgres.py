"""Debian's PostgreSQL server for tests: a fresh cluster in a temporary folder, on 127.0.0.1 on a
free port, stopped by its own pid.

PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user
(Debian's package makes it) and the server runs as that user, started directly (``Popen(user=)``)
so that the pid we hold is the postmaster's own. The folder is made under /tmp (a test's
tmp_path sits under a 0700 root folder the server could not enter) and removed at the end::

    with PostgresServer() as pg:
        pg.url  # postgresql://postgres@127.0.0.1:PORT/postgres
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"
USER = "postgres"


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian: /usr/lib/postgresql/15/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_version)
    return Path(found[-1]).parent if found else None


def _version(path: str) -> int:
    try:
        return int(Path(path).parent.parent.name)
    except ValueError:
        return 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class PostgresServer:
    def __init__(self, database: str = "dagster", startup_timeout: float = 60.0) -> None:
        self.database = database
        self.startup_timeout = startup_timeout
        self.port = 0
        self.folder: Path | None = None
        self.process: subprocess.Popen | None = None
        self._as = {"user": USER, "group": USER} if os.geteuid() == 0 else {}

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@{HOST}:{self.port}/{self.database}"

    @property
    def params(self) -> dict:
        """dagster-postgres's ``postgres_db`` settings for a dagster.yaml."""
        return {
            "hostname": HOST,
            "port": self.port,
            "username": USER,
            "password": "",
            "db_name": self.database,
        }

    def start(self) -> PostgresServer:
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError(
                "no PostgreSQL server: apt-get install postgresql (make system-packages)"
            )
        self.folder = Path(tempfile.mkdtemp(prefix="dagster-airflow-pg-"))
        data = self.folder / "data"
        if self._as:
            shutil.chown(self.folder, USER, USER)
        self._run([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", USER])
        self.port = _free_port()
        log = open(self.folder / "server.log", "wb")  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [
                    str(bin_dir / "postgres"),
                    "-D", str(data),
                    "-p", str(self.port),
                    "-k", str(self.folder),
                    "-c", f"listen_addresses={HOST}",
                    "-c", "fsync=off",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._as,
            )  # fmt: skip
        finally:
            log.close()
        self._wait_ready()
        self._run(
            [str(bin_dir / "createdb"), "-h", HOST, "-p", str(self.port), "-U", USER, self.database]
        )
        return self

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, text=True, cwd="/", **self._as)
        if done.returncode:
            raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}:\n{self.log()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    pass
                if (self.folder / "data" / "postmaster.pid").exists():
                    ready = subprocess.run(
                        [str(postgres_bin() / "pg_isready"), "-h", HOST, "-p", str(self.port)],
                        capture_output=True,
                    )
                    if ready.returncode == 0:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"postgres not ready in {self.startup_timeout}s:\n{self.log()}")

    def log(self) -> str:
        path = self.folder / "server.log" if self.folder else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def dagster_yaml(server: PostgresServer) -> str:
    """A dagster.yaml whose run, event log and schedule storages are the server's database.

    By URL with the psycopg2 driver named: SQLAlchemy 2.1 takes a plain ``postgresql://`` (what
    dagster-postgres makes of ``postgres_db``) to mean psycopg 3, with which dagster-postgres's
    ``NOTIFY run_events, %(id)s`` fails (docs/dagster-instance.md)."""
    url = f"postgresql+psycopg2://{USER}@{HOST}:{server.port}/{server.database}"
    return (
        "telemetry:\n  enabled: false\n"
        "nux:\n  enabled: false\n"
        "run_coordinator:\n  module: dagster._core.run_coordinator\n"
        "  class: DefaultRunCoordinator\n"
        f"storage:\n  postgres:\n    postgres_url: {url}\n"
    )
