"""ECS for tests: moto server on loopback, and an agent that runs its tasks as local processes.

moto answers the ECS and CloudWatch Logs APIs but runs no container. ``MotoEcs`` starts moto
in this process (so a test can reach its in-memory backend to set exit codes and stop reasons)
and keeps tasks RUNNING until something stops them. ``EcsAgent`` plays the ECS agent for one
cluster: it runs each new task's overridden command with the overridden environment, writes the
output to the task's awslogs stream, and records the exit code and stop reason as ECS would.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

log = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "eu-west-1"


class MotoEcs:
    """moto server on 127.0.0.1 and a free port, in this process.

    Servers of one process share moto's backends and its task transition: the transition is
    set by the first to start and unset by the last to stop, so a second server (one inside a
    deployment's network namespace) leaves the first one's tasks running."""

    _running: ClassVar[int] = 0
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, region: str = REGION) -> None:
        self.region = region
        self._server: Any = None
        self.endpoint_url = ""

    def start(self) -> MotoEcs:
        from moto.moto_api import state_manager
        from moto.server import ThreadedMotoServer

        # moto walks a task to STOPPED over four DescribeTasks calls; here a task runs until a
        # test or the agent stops it, as on ECS.
        with MotoEcs._lock:
            if MotoEcs._running == 0:
                state_manager.set_transition("ecs::task", {"progression": "manual", "times": 10**9})
            MotoEcs._running += 1
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        from moto.moto_api import state_manager

        if self._server is None:
            return
        self._server.stop()
        self._server = None
        with MotoEcs._lock:
            MotoEcs._running -= 1
            if MotoEcs._running == 0:
                state_manager.unset_transition("ecs::task")

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    @property
    def backend(self) -> Any:
        from moto.ecs.models import ecs_backends

        return ecs_backends[ACCOUNT_ID][self.region]

    def task(self, cluster: str, arn: str) -> Any:
        """moto's own Task object, to change what DescribeTasks answers."""
        return self.backend.tasks[cluster][arn]

    def finish(
        self,
        cluster: str,
        arn: str,
        exit_code: int | None = 0,
        stop_code: str = "EssentialContainerExited",
        reason: str = "Essential container in task exited",
        container_reason: str | None = None,
    ) -> None:
        """Stop a task as ECS reports a stopped one."""
        task = self.task(cluster, arn)
        container = task.containers[0]
        container.exitCode = exit_code
        container.last_status = "STOPPED"
        if container_reason:
            container.reason = container_reason
        if not getattr(task, "stop_code", None):
            task.stop_code = stop_code
        task.stopped_reason = task.stopped_reason or reason
        task.desired_status = "STOPPED"
        task.last_status = "STOPPED"


class EcsAgent:
    """Runs the tasks of one cluster of a ``MotoEcs`` as local processes.

    The command ``dagster-airflow`` resolves to the one beside this Python, as it would on the
    image's PATH. StopTask sends SIGTERM to the process group, as ECS signals a container.
    """

    def __init__(self, moto: MotoEcs, cluster: str, poll: float = 0.1) -> None:
        self.moto = moto
        self.cluster = cluster
        self.poll = poll
        self._stopped = threading.Event()
        self._seen: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._processes: dict[str, subprocess.Popen] = {}
        self._thread = threading.Thread(target=self._loop, name="ecs-agent", daemon=True)

    def start(self) -> EcsAgent:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(10)
        for process in list(self._processes.values()):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        for thread in self._threads:
            thread.join(10)

    def _loop(self) -> None:
        while not self._stopped.wait(self.poll):
            for arn, task in list(self.moto.backend.tasks.get(self.cluster, {}).items()):
                if arn in self._seen or task.desired_status != "RUNNING":
                    continue
                self._seen.add(arn)
                thread = threading.Thread(target=self._run_task, args=(arn, task), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _run_task(self, arn: str, task: Any) -> None:
        try:
            exit_code = self._run_container(arn, task)
        except Exception as exc:  # the agent reports what went wrong as ECS would
            log.exception("ECS agent could not run task %s", arn)
            self.moto.finish(
                self.cluster, arn, None, "TaskFailedToStart", f"CannotStartContainerError: {exc}"
            )
            return
        if task.desired_status == "STOPPED":  # StopTask while it ran
            task.stop_code = "UserInitiated"
        self.moto.finish(self.cluster, arn, exit_code)

    def _run_container(self, arn: str, task: Any) -> int:
        definition = self.moto.backend.describe_task_definition(task.task_definition_arn)
        container = definition.container_definitions[0]
        override = next(
            (
                o
                for o in task.overrides.get("containerOverrides", ())
                if o.get("name") == container["name"]
            ),
            {},
        )
        command = override.get("command") or container.get("command")
        # A container does not inherit this machine's AWS settings: only what ECS gives it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.update(_pairs(container.get("environment")))
        env.update(_pairs(override.get("environment")))
        env["PYTHONUNBUFFERED"] = "1"
        options = container["logConfiguration"]["options"]
        group, prefix = options["awslogs-group"], options["awslogs-stream-prefix"]
        stream = f"{prefix}/{container['name']}/{arn.rsplit('/', 1)[-1]}"
        logs = self.moto.client("logs")
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName=stream)

        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._processes[arn] = process
        threading.Thread(target=self._watch_stop, args=(task, process), daemon=True).start()
        last = 0
        assert process.stdout is not None
        for line in process.stdout:
            last = max(last, int(time.time() * 1000))  # CloudWatch orders a stream by time
            logs.put_log_events(
                logGroupName=group,
                logStreamName=stream,
                logEvents=[{"timestamp": last, "message": line.rstrip("\n")}],
            )
        code = process.wait()
        return 128 - code if code < 0 else code  # a signal, as Docker reports it

    def _watch_stop(self, task: Any, process: subprocess.Popen) -> None:
        while process.poll() is None:
            if task.desired_status == "STOPPED":
                os.killpg(process.pid, signal.SIGTERM)
                return
            time.sleep(self.poll)


def _pairs(items: Any) -> Mapping[str, str]:
    return {item["name"]: item["value"] for item in items or ()}
