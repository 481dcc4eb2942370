"""A real Airflow 3 deployment for tests: scheduler, DAG processor and api-server with the
LocalExecutor on SQLite, in a private network namespace of its own.

Airflow's log servers bind every interface whatever they are told, so the servers run inside a
network namespace (`unshare --net`, loopback up) and the test reaches the api-server from inside
it too: each REST call is a small Python process entered into that namespace with `nsenter`.
Each server is its own process group, stopped by that group's id.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dagster_airflow.testing.airflow_home import AirflowHome

_REQUEST = """
import json, sys, httpx
method, url, token, body = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
headers = {"Authorization": f"Bearer {token}"} if token else {}
try:
    response = httpx.request(method, url, headers=headers, json=json.loads(body), timeout=30)
except httpx.HTTPError as exc:
    print(json.dumps({"status": 0, "body": str(exc)}))
else:
    try:
        data = response.json()
    except ValueError:
        data = response.text
    print(json.dumps({"status": response.status_code, "body": data}))
"""

# An HTTP request as a browser or a script sends it: any headers (a cookie, no credentials).
_PLAIN_REQUEST = """
import json, sys, httpx
method, url, headers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
response = httpx.request(method, url, headers=headers, timeout=30)
print(json.dumps({"status": response.status_code, "body": response.text}))
"""

SERVERS = ("scheduler", "dag-processor", "api-server")


class AirflowDeployment:
    """`with AirflowDeployment(path) as airflow: airflow.rest("GET", "/api/v2/dags")`."""

    def __init__(self, path: Path, port: int = 8080, python: str = sys.executable) -> None:
        self.port = port
        base = f"http://127.0.0.1:{port}"
        self.home = AirflowHome(
            path,
            python=python,
            env={
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__API__BASE_URL": base,
                "AIRFLOW__API__PORT": str(port),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            },
        )
        self.base = base
        self.python = python
        self._namespace: subprocess.Popen | None = None
        self._servers: list[subprocess.Popen] = []
        self._token = ""

    def __enter__(self) -> AirflowDeployment:
        self.home.migrate()
        # The namespace lives as long as this process: loopback up, then wait.
        self._namespace = subprocess.Popen(
            ["unshare", "--net", "--", "sh", "-c", "ip link set lo up && exec sleep 100000"],
            start_new_session=True,
        )
        self.wait_until(lambda: self._loopback_up(), 10, "the network namespace's loopback")
        bin_dir = Path(self.python).parent
        logs = self.home.path / "server-logs"
        logs.mkdir(exist_ok=True)
        for server in SERVERS:
            with open(logs / f"{server}.log", "w") as log:
                self._servers.append(
                    subprocess.Popen(
                        [*self._enter(), str(bin_dir / "airflow"), server],
                        env=self.home.env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
        try:
            self.wait_until(self._api_ready, 180, "the api-server")
            self._token = self._get_token()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        for process in [*self._servers, self._namespace]:
            if process is None or process.poll() is not None:
                continue
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._servers.clear()

    def _enter(self) -> list[str]:
        return ["nsenter", "-t", str(self._namespace.pid), "-n", "--"]

    def command_inside(self, *argv: str) -> list[str]:
        """``argv`` as a command that runs inside the deployment's network namespace, where
        127.0.0.1 is the deployment's loopback (a browser, a client of the api-server)."""
        return [*self._enter(), *argv]

    @property
    def admin_password(self) -> str:
        """The admin's password, as the simple auth manager generated it."""
        passwords = self.home.path / "simple_auth_manager_passwords.json.generated"
        self.wait_until(passwords.exists, 60, "the simple auth manager's password file")
        return json.loads(passwords.read_text())["admin"]

    def _loopback_up(self) -> bool:
        done = subprocess.run(
            [*self._enter(), "ip", "-o", "link", "show", "lo"], capture_output=True, text=True
        )
        return done.returncode == 0 and "UP" in done.stdout

    def _api_ready(self) -> bool:
        for server, process in zip(SERVERS, self._servers, strict=True):
            if process.poll() is not None:
                log = (self.home.path / "server-logs" / f"{server}.log").read_text()
                raise RuntimeError(f"airflow {server} exited:\n{log[-3000:]}")
        status, _ = self._call("GET", "/api/v2/monitor/health", None, "")
        return status == 200

    def _get_token(self) -> str:
        status, body = self._call(
            "POST", "/auth/token", {"username": "admin", "password": self.admin_password}, ""
        )
        if status not in (200, 201):
            raise RuntimeError(f"POST /auth/token answered {status}: {body}")
        return body["access_token"]

    def _call(self, method: str, path: str, body: Any, token: str) -> tuple[int, Any]:
        done = subprocess.run(
            [
                *self._enter(),
                self.python,
                "-c",
                _REQUEST,
                method,
                self.base + path,
                token,
                json.dumps(body),
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{method} {path} failed: {done.stderr[-2000:]}")
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        return answer["status"], answer["body"]

    def rest(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """A call to Airflow's REST API as the admin user: (HTTP status, JSON body)."""
        return self._call(method, path, body, self._token)

    def run_python(self, code: str, *args: str) -> subprocess.CompletedProcess:
        """Run Python code inside the deployment's network namespace, where 127.0.0.1 is the
        api-server (``self.base``); ``sys.argv[1:]`` are ``args``."""
        return subprocess.run(
            [*self._enter(), self.python, "-c", code, *args], capture_output=True, text=True
        )

    def http(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        """A request with exactly these headers (no token of the kit's): (HTTP status, text)."""
        done = self.run_python(_PLAIN_REQUEST, method, self.base + path, json.dumps(headers or {}))
        if done.returncode != 0:
            raise RuntimeError(f"{method} {path} failed: {done.stderr[-2000:]}")
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        return answer["status"], answer["body"]

    @property
    def token(self) -> str:
        """The admin's bearer token, as POST /auth/token gave it."""
        return self._token

    def install(self, text: str, filename: str) -> Path:
        return self.home.install(text, filename)

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        """Until the DAG processor has parsed the DAG and the scheduler knows it."""
        self.wait_until(
            lambda: self.rest("GET", f"/api/v2/dags/{dag_id}")[0] == 200, timeout, dag_id
        )

    def write(self, path: str, body: Any) -> tuple[int, Any]:
        """A POST that creates something, tried again while SQLite's one writer is busy: under
        load the api-server's write may lose to the scheduler's (500 "Database error", 503
        "Database is locked"), with nothing written."""
        for _ in range(10):
            status, answer = self.rest("POST", path, body)
            if status not in (500, 503) or "atabase" not in str(answer):
                break
            time.sleep(1)
        return status, answer

    def trigger(self, dag_id: str, run_id: str, conf: dict | None = None) -> dict:
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf or {}}
        status, answer = self.write(f"/api/v2/dags/{dag_id}/dagRuns", body)
        if status != 200:
            raise RuntimeError(f"triggering {dag_id} answered {status}: {answer}")
        return answer

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        """The run's final state (success or failed)."""
        final: list[str] = []

        def finished() -> bool:
            _, body = self.rest("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            if isinstance(body, dict) and body.get("state") in ("success", "failed"):
                final.append(body["state"])
                return True
            return False

        self.wait_until(finished, timeout, f"run {run_id} of {dag_id}")
        return final[0]

    @staticmethod
    def wait_until(condition, timeout: float, what: str) -> None:
        """Poll ``condition`` until it is true; TimeoutError naming ``what`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} was not ready within {timeout} s")
            time.sleep(0.5)
