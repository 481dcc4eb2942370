"""A real Airflow 3 deployment for tests: scheduler, DAG processor, api-server and triggerer on
SQLite, with the LocalExecutor or the CeleryExecutor (Redis and one Celery worker per queue), in
a private network namespace of its own.

Airflow's log servers bind every interface whatever they are told, so the servers run inside a
network namespace (`unshare --net`, loopback up). The test reaches them from one thread of its
own that entered that namespace (`setns`): REST calls, and any server or client a test runs
there (`inside`). Each server is its own process group, stopped by that group's id.

Step servers the deployment's tasks start listen in a runtime directory of the deployment's own;
stopping the deployment stops them and checks that no process of it is left, by the runtime
directory every one of them has in its environment.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from dagster_airflow.step_server.protocol import RUNTIME_DIR_ENV_VAR, running_servers
from dagster_airflow.testing.airflow_home import AirflowHome
from harness.servers import LoopbackServer, free_port

T = TypeVar("T")
EXECUTORS = ("LocalExecutor", "CeleryExecutor")
SERVERS = ("scheduler", "dag-processor", "api-server", "triggerer")
CLONE_NEWNET = 0x40000000
# What the subprocess runner logs for a step the step server forked.
FORKED = re.compile(r"Step process (\d+) started \(forked by step server (\d+)\)")


def _enter_network_namespace(pid: int) -> None:
    """Move the calling thread (only it: a network namespace is per thread) into pid's."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns into the network namespace of {pid}: {os.strerror(error)}")
    finally:
        os.close(fd)


def children(pid: int) -> set[int]:
    """The pids of a process's children (none once it is gone)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def processes_with_env(entry: str) -> dict[int, str]:
    """pid -> command line of every process whose environment holds ``entry`` (NAME=value)."""
    wanted = entry.encode()
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if wanted not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        found[int(proc.name)] = command.strip()
    return found


class AirflowDeployment:
    """`with AirflowDeployment(path) as airflow: airflow.rest("GET", "/api/v2/dags")`.

    ``executor`` is "LocalExecutor" or "CeleryExecutor"; with Celery, one worker per name in
    ``queues`` listens on that queue alone, its output in ``worker_log(queue)``.
    """

    def __init__(
        self,
        path: Path,
        port: int = 8080,
        python: str = sys.executable,
        executor: str = "LocalExecutor",
        queues: Sequence[str] = ("default",),
        env: dict[str, str] | None = None,
    ) -> None:
        if executor not in EXECUTORS:
            raise ValueError(f"executor {executor!r} is not one of {', '.join(EXECUTORS)}")
        self.port = port
        self.executor = executor
        self.queues = tuple(queues)
        base = f"http://127.0.0.1:{port}"
        # /tmp keeps the step servers' socket paths short (at most 107 bytes).
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="da-deploy-", dir="/tmp"))
        settings = {
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
            # A test waits for the DAG file it installed to be found: look every 2 s (the manager
            # checks its bundles every bundle_refresh_check_interval, 5 s by default, too).
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
            "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "2",
            # A file is parsed again when it changes (the default sort by modified time), else
            # every min_file_process_interval: at the default 30 s, the tens of DAG files a
            # session installs keep a fifth of a core parsing the same text over and over.
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            RUNTIME_DIR_ENV_VAR: str(self.runtime_dir),
        }
        self.redis_port = free_port() if executor == "CeleryExecutor" else None
        if self.redis_port:
            redis = f"redis://127.0.0.1:{self.redis_port}"
            settings["AIRFLOW__CELERY__BROKER_URL"] = f"{redis}/0"
            settings["AIRFLOW__CELERY__RESULT_BACKEND"] = f"{redis}/1"
            settings["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = "1"
            settings["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] = self.queues[0]
        # Cold: its servers run the commands, and a warm server (testing/warm_command.py) would
        # be a process of this home left behind when the deployment stops.
        self.home = AirflowHome(path, python=python, env={**settings, **(env or {})}, warm=False)
        self.base = base
        self.python = python
        self.logs = self.home.path / "server-logs"
        self._namespace: subprocess.Popen | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._client = None
        self._servers: dict[str, subprocess.Popen] = {}
        self._inside: list[LoopbackServer] = []
        self._token = ""

    # -- life --

    def __enter__(self) -> AirflowDeployment:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Started and not stopped since (start() after stop() starts it again)."""
        return self._namespace is not None

    def start(self) -> None:
        self.home.migrate()
        self.runtime_dir.mkdir(exist_ok=True)  # stop() removes it
        self.logs.mkdir(exist_ok=True)
        # The namespace lives as long as this process: loopback up, then wait.
        self._namespace = subprocess.Popen(
            ["unshare", "--net", "--", "sh", "-c", "ip link set lo up && exec sleep 100000"],
            start_new_session=True,
        )
        try:
            self.wait_until(self._loopback_up, 10, "the network namespace's loopback")
            self._thread = ThreadPoolExecutor(
                1, "airflow-namespace", _enter_network_namespace, (self._namespace.pid,)
            )
            if self.redis_port:
                self._start("redis", self._redis_command())
                self.wait_until(self._redis_ready, 30, "redis-server")
            bin_dir = Path(self.python).parent
            for server in SERVERS:
                self._start(server, [str(bin_dir / "airflow"), server])
            if self.executor == "CeleryExecutor":
                for queue in self.queues:
                    self._start(
                        f"worker-{queue}", self.worker_command(str(bin_dir / "airflow"), queue)
                    )
            self.wait_until(self._api_ready, 180, "the api-server")
            self._token = self._get_token()
            for queue in self.queues if self.executor == "CeleryExecutor" else ():
                self.wait_until(
                    lambda q=queue: " ready." in self.worker_log(q), 180, f"celery worker {queue}"
                )
        except BaseException:
            self.stop(check=False)
            raise

    def stop(self, check: bool = True, grace: float = 20) -> None:
        """Stop every server by its process group, then the step servers of the runtime
        directory, each by its pid. Raises RuntimeError naming any process of the deployment
        still alive ``grace`` s after that (it is killed, by its pid)."""
        # All at once (each takes seconds to shut down), Redis last: the workers and the
        # scheduler talk to it until they are gone.
        redis = self._servers.pop("redis", None)
        _stop_groups(list(self._servers.values()))
        self._servers.clear()
        if redis is not None:
            _stop_groups([redis])
        for server in self._inside:
            server.stop()
        self._inside.clear()
        _stop_step_servers(self.runtime_dir)
        if self._thread is not None:
            self._thread.submit(self._close_client).result()
            self._thread.shutdown()
            self._thread = None
        if self._namespace is not None:
            _stop_groups([self._namespace])
            self._namespace = None
        left = self.left_behind(timeout=grace)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
        if left and check:
            raise RuntimeError(f"the deployment left processes behind: {left}")

    def left_behind(self, timeout: float = 0) -> dict[int, str]:
        """The processes of this deployment still alive (pid -> command line): every one has
        its runtime directory in its environment. Waits up to ``timeout`` s for them to go."""
        entry = f"{RUNTIME_DIR_ENV_VAR}={self.runtime_dir}"
        deadline = time.monotonic() + timeout
        while True:
            left = processes_with_env(entry)
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)

    def restart(self, server: str) -> None:
        """Stop one server (the triggerer ...) by its process group, as a deploy or a crash
        would, and start it again; its log goes on in the same file."""
        with self.stopped(server):
            pass

    @contextlib.contextmanager
    def stopped(self, server: str):
        """Without one server (the triggerer ...) for a while, as during a deploy or after a
        crash: stopped by its process group, started again on the way out (its log goes on)."""
        _stop_groups([self._servers.pop(server)])
        try:
            yield
        finally:
            self._start(server, [str(Path(self.python).parent / "airflow"), server], mode="a")

    def _start(self, name: str, command: list[str], mode: str = "w") -> None:
        with open(self.logs / f"{name}.log", mode) as log:
            self._servers[name] = subprocess.Popen(
                [*self.command_inside(), *command],
                env=self.home.env,
                cwd=self.home.path,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def _redis_command(self) -> list[str]:
        redis = shutil.which("redis-server")
        if redis is None:
            raise RuntimeError(
                "the CeleryExecutor deployment needs Debian's redis-server, which is not on "
                "PATH; `make system-packages` (apt-get install redis-server) installs it."
            )
        data = self.home.path / "redis"
        data.mkdir(exist_ok=True)
        return [
            redis,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.redis_port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data),
        ]

    @staticmethod
    def worker_command(airflow: str, queue: str) -> list[str]:
        """How the deployment starts the Celery worker of one queue (as docs/deployment.md)."""
        return [
            airflow,
            "celery",
            "worker",
            "--queues",
            queue,
            "--celery-hostname",
            f"{queue}@%h",
            "--concurrency",
            "1",
            "--skip-serve-logs",
            "--without-gossip",
            "--without-mingle",
        ]

    # -- inside the namespace --

    def command_inside(self, *argv: str) -> list[str]:
        """``argv`` as a command that runs inside the deployment's network namespace, where
        127.0.0.1 is the deployment's loopback (a browser, a client of the api-server); with no
        ``argv``, the prefix alone."""
        assert self._namespace is not None, "the deployment is not running"
        return ["nsenter", "-t", str(self._namespace.pid), "-n", "--", *argv]

    def inside(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in the thread that is inside the namespace: what it connects to
        and the processes it starts are the deployment's loopback's."""
        assert self._thread is not None, "the deployment is not running"
        return self._thread.submit(function, *args).result()

    def start_inside(self, server: LoopbackServer) -> str:
        """Start a loopback server (moto, say) inside the namespace; stopped with the rest."""
        url = self.inside(server.start)
        self._inside.append(server)
        return url

    @property
    def admin_password(self) -> str:
        """The admin's password, as the simple auth manager generated it."""
        passwords = self.home.path / "simple_auth_manager_passwords.json.generated"
        self.wait_until(passwords.exists, 60, "the simple auth manager's password file")
        return json.loads(passwords.read_text())["admin"]

    def _loopback_up(self) -> bool:
        done = subprocess.run(
            [*self.command_inside(), "ip", "-o", "link", "show", "lo"],
            capture_output=True,
            text=True,
        )
        return done.returncode == 0 and "UP" in done.stdout

    def _redis_ready(self) -> bool:
        self._check_servers()

        def ping() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), timeout=2) as sock:
                    sock.sendall(b"PING\r\n")
                    return sock.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        return self.inside(ping)

    def _check_servers(self) -> None:
        for name, process in self._servers.items():
            if process.poll() is not None:
                log = (self.logs / f"{name}.log").read_text()
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{log[-3000:]}")

    def _api_ready(self) -> bool:
        self._check_servers()
        status, _ = self._call("GET", "/api/v2/monitor/health", None, "")
        return status == 200

    def _get_token(self) -> str:
        status, body = self._call(
            "POST", "/auth/token", {"username": "admin", "password": self.admin_password}, ""
        )
        if status not in (200, 201):
            raise RuntimeError(f"POST /auth/token answered {status}: {body}")
        return body["access_token"]

    def _http(self, method: str, url: str, headers: dict, body: Any) -> tuple[int, Any]:
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=30)
        try:
            response = self._client.request(method, url, headers=headers, json=body)
        except httpx.HTTPError as exc:
            return 0, str(exc)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _call(self, method: str, path: str, body: Any, token: str) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.inside(self._http, method, self.base + path, headers, body)

    # -- REST --

    def rest(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """A call to Airflow's REST API as the admin user: (HTTP status, JSON body)."""
        return self._call(method, path, body, self._token)

    def run_python(self, code: str, *args: str) -> subprocess.CompletedProcess:
        """Run Python code inside the deployment's network namespace, where 127.0.0.1 is the
        api-server (``self.base``); ``sys.argv[1:]`` are ``args``."""
        return subprocess.run(
            [*self.command_inside(), self.python, "-c", code, *args],
            capture_output=True,
            text=True,
        )

    def http(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        """A request with exactly these headers (no token or cookie of the kit's): (HTTP status,
        text)."""
        import httpx

        def send() -> tuple[int, str]:
            response = httpx.request(method, self.base + path, headers=headers or {}, timeout=30)
            return response.status_code, response.text

        return self.inside(send)

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

    def write(self, path: str, body: Any, method: str = "POST") -> tuple[int, Any]:
        """A call that writes, tried again while SQLite's one writer is busy: under load the
        api-server's write may lose to the scheduler's (500 "Database error", 503 "Database is
        locked"), with nothing written."""
        for _ in range(10):
            status, answer = self.rest(method, path, body)
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

    def health(self) -> dict[str, str]:
        """Each component's status as /api/v2/monitor/health reports it ("healthy", ...)."""
        _, body = self.rest("GET", "/api/v2/monitor/health")
        if not isinstance(body, dict):
            return {}
        return {name: part.get("status") for name, part in body.items() if isinstance(part, dict)}

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict]:
        """task id -> the task instance as the REST API shows it (state, try_number, ...)."""
        status, body = self.rest("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        if status != 200:
            raise RuntimeError(f"listing the task instances of {run_id} answered {status}: {body}")
        return {ti["task_id"]: ti for ti in body["task_instances"]}

    def clear(self, dag_id: str, run_id: str, task_ids: list[str], downstream: bool) -> list:
        """Clear task instances (REST clearTaskInstances: `airflow tasks clear` clears
        nothing); the task instances it cleared."""
        body = {
            "dag_run_id": run_id,
            "task_ids": task_ids,
            "include_downstream": downstream,
            "dry_run": False,
            "only_failed": False,
        }
        status, answer = self.write(f"/api/v2/dags/{dag_id}/clearTaskInstances", body)
        if status != 200:
            raise RuntimeError(f"clearing {task_ids} of {run_id} answered {status}: {answer}")
        return answer["task_instances"]

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str) -> dict:
        """PATCH a task instance's state; "failed" stops a running task (Airflow calls its
        on_kill)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        status, answer = self.write(path, {"new_state": state}, method="PATCH")
        if status != 200:
            raise RuntimeError(f"setting {task_id} of {run_id} {state} answered {status}: {answer}")
        return answer

    def set_run_state(self, dag_id: str, run_id: str, state: str) -> dict:
        """PATCH a DAG run's state, as the UI's "Mark run as failed" does."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"
        status, answer = self.write(path, {"state": state}, method="PATCH")
        if status != 200:
            raise RuntimeError(f"setting {run_id} {state} answered {status}: {answer}")
        return answer

    # -- logs --

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """One try's task log, as the worker wrote it (JSON lines) under $AIRFLOW_HOME/logs."""
        path = (
            self.home.path
            / "logs"
            / f"dag_id={dag_id}"
            / f"run_id={run_id}"
            / f"task_id={task_id}"
            / f"attempt={try_number}.log"
        )
        return path.read_text() if path.exists() else ""

    def task_log_shown(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """One try's log as the UI shows it (GET .../logs/N): the worker's lines and, for a
        deferred task, its trigger's lines from the triggerer; one message a line."""
        path = (
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/"
            f"{try_number}?full_content=true"
        )
        status, body = self.rest("GET", path)
        if status != 200:
            raise RuntimeError(f"the log of {task_id} in {run_id} answered {status}: {body}")
        content = body.get("content", []) if isinstance(body, dict) else [body]
        lines = []
        for item in content if isinstance(content, list) else [content]:
            lines.append(str(item.get("event", item)) if isinstance(item, dict) else str(item))
        return "\n".join(lines)

    def forked_step(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1
    ) -> tuple[int, int]:
        """(step pid, step server pid) of a try the step server forked, from its task log;
        AssertionError when the log has no such line (a fresh process ran the step)."""
        log = self.task_log(dag_id, run_id, task_id, try_number)
        found = FORKED.search(log)
        assert found, (
            f"{task_id} try {try_number} of {run_id} was not forked by a step server:\n"
            + log[-3000:]
        )
        return int(found[1]), int(found[2])

    def worker_log(self, queue: str) -> str:
        """What the Celery worker of ``queue`` printed."""
        return self.server_log(f"worker-{queue}")

    def server_log(self, server: str) -> str:
        """What one server (the api-server ...) printed."""
        path = self.logs / f"{server}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_until(self, condition, timeout: float, what: str) -> None:
        """Poll ``condition`` until it is true; TimeoutError naming ``what`` after ``timeout`` s,
        RuntimeError with its log's end as soon as a server of the deployment has exited."""
        deadline = time.monotonic() + timeout
        while not condition():
            self._check_servers()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} was not ready within {timeout} s")
            time.sleep(0.5)


def _stop_step_servers(runtime_dir: Path) -> None:
    """Stop the step servers of a runtime directory all at once, each by its pid: each takes a
    second or more to exit with its code location loaded, and a session leaves one per code
    location its DAGs use (stop_servers stops them one after another)."""
    servers = running_servers(runtime_dir)
    if servers:
        with ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(lambda server: server.stop(), servers))


def _stop_groups(processes: list[subprocess.Popen], timeout: float = 15) -> None:
    """SIGTERM each process's group, then wait for them all; SIGKILL any group still there
    after ``timeout`` s."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
