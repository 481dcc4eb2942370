"""ECS runner: each step as an AWS ECS task (Airflow side; boto3 is imported inside methods).

The runner starts one task of the user's task definition with the worker's command and the step
request in the container overrides, follows it with bounded polling, copies its CloudWatch log
stream into the Airflow task log, and turns the container's exit code and the task's stop reason
into the StepResult. A deterministic ``startedBy`` mark lets a restarted Airflow task follow the
ECS task its earlier process started instead of starting a second one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from dagster_airflow.connection import Connection
from dagster_airflow.errors import ConfigurationError, RunnerError
from dagster_airflow.model import StepRequest
from dagster_airflow.options import Configured, OptionFields
from dagster_airflow.plugins import hookimpl
from dagster_airflow.runners.base import WORKER_COMMAND, RunContext
from dagster_airflow.runners.lifecycle import RemoteRunner, RunState
from dagster_airflow.step_result import StepError

logger = logging.getLogger(__name__)

LAUNCH_TYPES = ("FARGATE", "EC2", "EXTERNAL")
STORAGE_CREDENTIALS = ("task_role", "environment")
# ECS refuses a RunTask whose overrides exceed 8192 characters of JSON.
MAX_OVERRIDES_CHARS = 8192
# ECS limits startedBy to 36 letters, digits, '-', '_' and '/'.
STARTED_BY_PREFIX = "dagster-airflow-"
_STARTING = ("PROVISIONING", "PENDING", "ACTIVATING")
# CloudWatch may hold a stopped container's last lines back for a few seconds.
_DRAIN_READS = 5
_PAGES_PER_READ = 100
# What an ECS tag value may hold; a mapped step's key (op[piece_3]) has brackets it may not.
_TAG_VALUE_BAD = re.compile(r"[^\w\s.:/=+\-@]")


def started_by(request: StepRequest) -> str:
    """The task's mark, cut from the identity (StepRequest.fingerprint): the same for every
    process of one Airflow try, different across tries."""
    return STARTED_BY_PREFIX + request.fingerprint()[: 36 - len(STARTED_BY_PREFIX)]


def _aws_network_configuration(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """RunTask's networkConfiguration from the boto3 shape or the short one
    ``{"subnets": [...], "security_groups": [...], "assign_public_ip": False}``."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"the ecs runner's network_configuration must be a mapping such as "
            f'{{"subnets": ["subnet-1"], "security_groups": ["sg-1"]}}, got {value!r}.'
        )
    if "awsvpcConfiguration" in value:
        return dict(value)
    subnets = value.get("subnets")
    if not subnets or isinstance(subnets, str):
        raise ConfigurationError(
            f"the ecs runner's network_configuration needs a list of 'subnets', got {value!r}; "
            'write it as {"subnets": ["subnet-1"], "security_groups": ["sg-1"]}.'
        )
    awsvpc: dict[str, Any] = {"subnets": list(subnets)}
    groups = value.get("security_groups", value.get("securityGroups"))
    if groups:
        awsvpc["securityGroups"] = list(groups)
    public = value.get("assign_public_ip", value.get("assignPublicIp"))
    if public is not None:
        if isinstance(public, bool):
            public = "ENABLED" if public else "DISABLED"
        awsvpc["assignPublicIp"] = public
    return {"awsvpcConfiguration": awsvpc}


def _capacity_provider(item: Any) -> dict[str, Any]:
    if not isinstance(item, Mapping) or not item.get("capacityProvider"):
        raise ConfigurationError(
            f"the ecs runner's capacity_provider_strategy item {item!r} is not a mapping with a "
            'capacityProvider; write it as [{"capacityProvider": "FARGATE_SPOT", "weight": 1}].'
        )
    return dict(item)


_field = OptionFields("the ecs runner")


@attrs.frozen
class EcsOptions:
    cluster: str = _field.string("cluster", example="my-cluster")
    task_definition: str = _field.string("task_definition", example="my-dagster-code:3")
    container_name: str | None = _field.string("container_name", default=None, example="step")
    launch_type: str | None = _field.one_of("launch_type", LAUNCH_TYPES, default=None)
    capacity_provider_strategy: Sequence[Mapping[str, Any]] = _field.items(
        "capacity_provider_strategy",
        _capacity_provider,
        "a list of capacity providers",
        '[{"capacityProvider": "FARGATE_SPOT", "weight": 1}]',
    )
    network_configuration: Mapping[str, Any] | None = attrs.field(
        default=None, converter=_aws_network_configuration
    )
    platform_version: str | None = _field.string("platform_version", default=None, example="LATEST")
    tags: Mapping[str, str] = _field.string_map("tags", example="{team: data}")
    awslogs_group: str | None = _field.string("awslogs_group", default=None, example="/ecs/x")
    awslogs_stream_prefix: str | None = _field.string(
        "awslogs_stream_prefix", default=None, example="ecs"
    )
    poll_interval: float = _field.number("poll_interval", default=6.0, example="6")
    timeout: float | None = _field.number("timeout", default=None, example="3600")
    pending_timeout: float | None = _field.number(
        "pending_timeout", default=900.0, example="900", optional=True
    )
    aws_conn_id: str | None = _field.string(
        "aws_conn_id", default="aws_default", example="aws_default", optional=True
    )
    storage_credentials: str = _field.one_of(
        "storage_credentials", STORAGE_CREDENTIALS, default="task_role"
    )
    region_name: str | None = _field.string("region_name", default=None, example="eu-west-1")
    endpoint_url: str | None = _field.string(
        "endpoint_url", default=None, example="https://ecs.eu-west-1.amazonaws.com"
    )

    def __attrs_post_init__(self) -> None:
        if self.launch_type is not None and self.capacity_provider_strategy:
            raise ConfigurationError(
                f"the ecs runner got both launch_type {self.launch_type!r} and "
                f"capacity_provider_strategy {list(self.capacity_provider_strategy)!r}; ECS "
                "takes one, so remove the other."
            )


class CloudWatchLogReader:
    """Reads one log stream forward from where the previous read stopped: no line twice, none
    lost, because it keeps CloudWatch's nextForwardToken between reads."""

    def __init__(self, client: Any, group: str, stream: str) -> None:
        self.client = client
        self.group = group
        self.stream = stream
        self._token: str | None = None

    def read(self) -> Iterator[str]:
        for _ in range(_PAGES_PER_READ):
            kwargs: dict[str, Any] = {"logGroupName": self.group, "logStreamName": self.stream}
            if self._token is None:
                kwargs["startFromHead"] = True
            else:
                kwargs["nextToken"] = self._token
            try:
                page = self.client.get_log_events(**kwargs)
            except self.client.exceptions.ResourceNotFoundException:
                return  # the container has not written yet: the stream appears with its first line
            for event in page.get("events", ()):
                yield from event.get("message", "").splitlines() or [""]
            token = page.get("nextForwardToken")
            # CloudWatch answers the same token once the stream has nothing newer.
            if token is None or token == self._token:
                self._token = token or self._token
                return
            self._token = token


class EcsRunner(Configured, RemoteRunner):
    """Runs ``dagster-airflow execute-step`` as an ECS task of ``task_definition``.

    See docs/ecs.md for the task definition the image needs, IAM, and every option. The
    lifecycle (reattach by ``startedBy``, polling, deadlines, kill) is RemoteRunner's.
    """

    name = "ecs"
    options_class = EcsOptions
    run_noun = "task"
    start_timeout_option = "pending_timeout"

    def configure(self) -> None:
        # The lifecycle's rule, with ECS's numbers: DescribeTasks every poll_interval seconds,
        # CloudWatch a few seconds to hand over a stopped container's last lines.
        self.first_poll = self.max_poll = self.options.poll_interval
        self.timeout = self.options.timeout
        self.start_timeout = self.options.pending_timeout
        self.drain_grace = _DRAIN_READS * min(self.options.poll_interval, 2.0)
        self._endpoint_url: str | None = None
        self._ecs: Any = None
        self._logs: Any = None
        self._task_arn: str | None = None  # the task followed last (tests read it)

    @classmethod
    def scaffold_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        # Shown in the DAG file because they decide where credentials come from.
        return {"aws_conn_id": "aws_default", "storage_credentials": "task_role", **options}

    # -- AWS clients ---------------------------------------------------------------------------

    def _session(self, context: RunContext) -> Any:
        """A boto3 session with the credentials of the Airflow connection ``aws_conn_id``; with
        no such connection, boto3's own chain (environment, instance or pod role)."""
        import boto3

        conn = None
        if self.aws_conn_id:
            conn = Connection.parse(context.connection(self.aws_conn_id), self.aws_conn_id)
            if conn is None:
                logger.info(
                    "No Airflow connection %r: the ecs runner uses boto3's default credentials",
                    self.aws_conn_id,
                )
        extra = conn.extra if conn else {}
        kwargs: dict[str, Any] = {
            "region_name": self.region_name or extra.get("region_name") or None,
        }
        if conn and conn.login:
            kwargs["aws_access_key_id"] = conn.login
            kwargs["aws_secret_access_key"] = conn.password
            kwargs["aws_session_token"] = extra.get("aws_session_token")
        self._endpoint_url = self.endpoint_url or extra.get("endpoint_url") or None
        return boto3.session.Session(**kwargs)

    def _client(self, session: Any, service: str, region: str | None = None) -> Any:
        from botocore.config import Config

        config = Config(retries={"mode": "standard", "max_attempts": 5})
        return session.client(
            service, region_name=region, endpoint_url=self._endpoint_url, config=config
        )

    # -- run -----------------------------------------------------------------------------------

    def session(self, request: StepRequest, context: RunContext) -> Any:
        # The overrides carry the job's variables (and in 'environment' mode the credentials)
        # into botocore's DEBUG lines.
        environment = self.storage_credentials == "environment"
        credentials = list(context.secret_env.values()) if environment else []
        return _redacted_from_botocore_debug([*context.job_env.values(), *credentials])

    def platform_error(self, exc: Exception) -> Exception | None:
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, ClientError):
            return RunnerError(
                f"the ecs runner's {exc.operation_name} call on cluster {self.cluster!r} "
                f"failed: {_client_error(exc)}; check what the credentials of "
                f"aws_conn_id {self.aws_conn_id!r} may do (docs/ecs.md lists the calls)."
            )
        if isinstance(exc, BotoCoreError):
            return RunnerError(
                f"the ecs runner cannot reach ECS for cluster {self.cluster!r}: {exc}; "
                f"check the Airflow connection {self.aws_conn_id!r} (credentials, "
                "region_name, endpoint_url) or the runner's region_name."
            )
        return None

    def prepare(self, request: StepRequest, context: RunContext) -> None:
        session = self._session(context)
        self._ecs = self._client(session, "ecs")
        self._task_definition = self._describe_task_definition(self._ecs)
        self._container_definition = self._container(self._task_definition)
        group, prefix, logs_region = self._log_configuration(self._container_definition)
        self._log_group, self._log_prefix = group, prefix
        self._logs = self._client(session, "logs", logs_region)

    def find(self, request: StepRequest, context: RunContext) -> _Task | None:
        mark = started_by(request)
        task = self._running_task(self._ecs, mark)
        if task is None:
            return None
        context.log.info(
            "Following ECS task %s, started earlier for this try (startedBy %s)",
            task["taskArn"],
            mark,
        )
        return self._task(task["taskArn"], context.log)

    def earlier_runs(self, request: StepRequest, context: RunContext) -> list[_Task]:
        """The ECS tasks of this task's earlier tries that have not stopped, by their marks."""
        found = []
        for try_number in range(1, request.task.try_number):
            earlier = attrs.evolve(request, task=attrs.evolve(request.task, try_number=try_number))
            task = self._running_task(self._ecs, started_by(earlier))
            if task is not None:
                found.append(_Task(task["taskArn"], None, ""))
        return found

    def start(self, request: StepRequest, context: RunContext) -> _Task:
        task = self._start(
            self._ecs,
            request,
            context,
            self._task_definition,
            self._container_definition,
            started_by(request),
            context.log,
        )
        return self._task(task["taskArn"], context.log)

    def _task(self, arn: str, log: logging.Logger) -> _Task:
        self._task_arn = arn
        name = self._container_definition["name"]
        stream = f"{self._log_prefix}/{name}/{arn.rsplit('/', 1)[-1]}"
        group = self._log_group
        log.info("Copying the task's log from CloudWatch Logs: group %s, stream %s", group, stream)
        return _Task(arn, CloudWatchLogReader(self._logs, group, stream), f"{group}/{stream}")

    def describe(self, handle: _Task) -> str:
        return f"ECS task {handle.arn.rsplit('/', 1)[-1]}"

    def handle_to_data(self, handle: _Task) -> str:
        return handle.arn

    def handle_from_data(self, data: str, request: StepRequest, context: RunContext) -> _Task:
        """The ECS task of a deferred step, by its ARN; its log is read from its start."""
        return self._task(data, context.log)

    def read_output(self, handle: _Task, wait: float, final: bool = False) -> Iterable[str]:
        return list(handle.reader.read())

    def state(self, handle: _Task) -> RunState:
        task = self._describe(self._ecs, handle.arn)
        status = task["lastStatus"]
        name = self._container_definition["name"]
        container = next((c for c in task.get("containers", ()) if c.get("name") == name), {})
        return RunState(
            status,
            finished=status == "STOPPED",
            exit_code=container.get("exitCode"),
            starting=status in _STARTING,
            # A container that never ran (no exit code) wrote nothing to wait for.
            ran=any(c.get("exitCode") is not None for c in task.get("containers", ())),
            detail=(task, container),
        )

    def stop(self, handle: _Task, reason: str) -> None:
        reason = f"dagster-airflow: {reason}"
        self._ecs.stop_task(cluster=self.cluster, task=handle.arn, reason=reason[:255])

    def never_reported(
        self, handle: _Task, state: RunState, error: StepError | None
    ) -> StepError | None:
        """Why ECS stopped the task, as one sentence with what to do."""
        task, container = state.detail
        why = stop_description(task, container, handle.stream)
        return StepError("EcsTaskStopped", why, cause=error)

    def _describe_task_definition(self, ecs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            return ecs.describe_task_definition(taskDefinition=self.task_definition)[
                "taskDefinition"
            ]
        except ClientError as exc:
            raise RunnerError(
                f"cannot read the ECS task definition {self.task_definition!r}: "
                f"{_client_error(exc)}; check the ecs runner's task_definition (a family, "
                "family:revision or ARN) and the region."
            ) from exc

    def _container(self, task_definition: Mapping[str, Any]) -> dict[str, Any]:
        containers = task_definition.get("containerDefinitions", [])
        names = [c["name"] for c in containers]
        if self.container_name is None:
            if len(containers) == 1:
                return containers[0]
            raise ConfigurationError(
                f"the ECS task definition {self.task_definition!r} has containers {names}; set "
                "the ecs runner's container_name to the one with dagster-airflow in its image."
            )
        for container in containers:
            if container["name"] == self.container_name:
                return container
        raise ConfigurationError(
            f"the ECS task definition {self.task_definition!r} has no container "
            f"{self.container_name!r}; its containers are {names}."
        )

    def _log_configuration(self, container: Mapping[str, Any]) -> tuple[str, str, str | None]:
        config = container.get("logConfiguration") or {}
        options = (config.get("options") or {}) if config.get("logDriver") == "awslogs" else {}
        group = self.awslogs_group or options.get("awslogs-group")
        prefix = self.awslogs_stream_prefix or options.get("awslogs-stream-prefix")
        if not group or not prefix:
            raise ConfigurationError(
                f"the container {container['name']!r} of ECS task definition "
                f"{self.task_definition!r} has no awslogs log group and stream prefix "
                f"(logConfiguration {config or None!r}); the ecs runner reads the step's events "
                "from CloudWatch Logs, so give the container the awslogs driver with "
                "awslogs-group and awslogs-stream-prefix, or set awslogs_group and "
                "awslogs_stream_prefix."
            )
        return group, prefix, options.get("awslogs-region")

    def _running_task(self, ecs: Any, mark: str) -> dict[str, Any] | None:
        """A task of this try that has not stopped, if an earlier attempt started one."""
        arns = ecs.list_tasks(cluster=self.cluster, startedBy=mark, desiredStatus="RUNNING")[
            "taskArns"
        ]
        if not arns:
            return None
        tasks = ecs.describe_tasks(cluster=self.cluster, tasks=arns[:100])["tasks"]
        running = [t for t in tasks if t.get("lastStatus") != "STOPPED"]
        return running[0] if running else None

    def overrides(
        self, request: StepRequest, context: RunContext, container_name: str
    ) -> dict[str, Any]:
        """RunTask's overrides: the worker's command and environment, the job's variables
        (``context.job_env``) included. Anyone allowed ecs:DescribeTasks can read them, which
        is why credentials go in only when asked (docs/ecs.md: ECS secrets for the job's)."""
        credentials = context.secret_env if self.storage_credentials == "environment" else {}
        env = self.worker_env(request, attrs.evolve(context, secret_env=credentials))
        return {
            "containerOverrides": [
                {
                    "name": container_name,
                    "command": list(WORKER_COMMAND),
                    "environment": [{"name": k, "value": v} for k, v in sorted(env.items())],
                }
            ]
        }

    def _start(
        self,
        ecs: Any,
        request: StepRequest,
        context: RunContext,
        task_definition: Mapping[str, Any],
        container: Mapping[str, Any],
        mark: str,
        log: logging.Logger,
    ) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        if context.secret_env and self.storage_credentials == "task_role":
            log.info(
                "Storage credentials stay out of the ECS task (storage_credentials='task_role'): "
                "its task role must grant access to the storage"
            )
        overrides = self.overrides(request, context, container["name"])
        size = len(json.dumps(overrides, separators=(",", ":")))
        if size > MAX_OVERRIDES_CHARS:
            raise ConfigurationError(
                f"the ECS overrides for step {request.step_key!r} are {size} characters, over "
                f"ECS's limit of {MAX_OVERRIDES_CHARS}; the step request carries the run "
                "config, so move large values out of it (into a file or resource the image has)."
            )
        kwargs: dict[str, Any] = {
            "cluster": self.cluster,
            "taskDefinition": task_definition["taskDefinitionArn"],
            "count": 1,
            "startedBy": mark,
            "overrides": overrides,
            "tags": [{"key": k, "value": v} for k, v in self._tags(request).items()],
        }
        if self.launch_type:
            kwargs["launchType"] = self.launch_type
        if self.capacity_provider_strategy:
            kwargs["capacityProviderStrategy"] = self.capacity_provider_strategy
        if self.network_configuration:
            kwargs["networkConfiguration"] = self.network_configuration
        if self.platform_version:
            kwargs["platformVersion"] = self.platform_version
        try:
            response = ecs.run_task(**kwargs)
        except ClientError as exc:
            raise RunnerError(
                f"ECS refused to run task definition {self.task_definition!r} on cluster "
                f"{self.cluster!r}: {_client_error(exc)}; check the ecs runner's options."
            ) from exc
        if not response.get("tasks"):
            failures = "; ".join(
                f"{f.get('reason')} ({f.get('arn') or f.get('detail') or 'no detail'})"
                for f in response.get("failures", ())
            )
            raise RunnerError(
                f"ECS started no task of {self.task_definition!r} on cluster {self.cluster!r}: "
                f"{failures or 'no reason given'}; check the cluster's capacity and the options."
            )
        task = response["tasks"][0]
        log.info(
            "Started ECS task %s of %s on cluster %s (startedBy %s): %s",
            task["taskArn"],
            task_definition["taskDefinitionArn"],
            self.cluster,
            mark,
            " ".join(WORKER_COMMAND),
        )
        return task

    def _tags(self, request: StepRequest) -> dict[str, str]:
        # The one vocabulary (StepRequest.tags), and the short names of earlier versions, which
        # IAM conditions and cost reports may use.
        ours = request.tags() | {"dagster-airflow/step": request.step_key}
        if request.task is not None:
            ours["dagster-airflow/dag"] = request.task.dag_id
            ours["dagster-airflow/task"] = request.task.task_id
        ours = {k: _TAG_VALUE_BAD.sub("_", v) for k, v in ours.items()}
        # ECS tag values hold at most 256 characters.
        return {k: v[:256] for k, v in {**ours, **self.tags}.items()}

    def _describe(self, ecs: Any, arn: str) -> dict[str, Any]:
        response = ecs.describe_tasks(cluster=self.cluster, tasks=[arn])
        if not response.get("tasks"):
            failures = response.get("failures") or [{}]
            raise RunnerError(
                f"ECS no longer knows task {arn} on cluster {self.cluster!r} "
                f"({failures[0].get('reason', 'no reason given')}); it may have been stopped "
                "over an hour ago."
            )
        return response["tasks"][0]


@attrs.frozen
class _Task:
    """An ECS task this runner follows: its ARN and its CloudWatch log stream."""

    arn: str
    reader: CloudWatchLogReader | None  # None: a task only to stop (Runner.earlier_runs)
    stream: str  # group/stream, for messages


def stop_description(task: Mapping[str, Any], container: Mapping[str, Any], stream: str) -> str:
    """Why a task stopped without its step's result, as one sentence with what to do."""
    arn = task.get("taskArn", "?")
    code = task.get("stopCode") or ""
    reason = task.get("stoppedReason") or ""
    container_reason = container.get("reason") or ""
    exit_code = container.get("exitCode")
    name = container.get("name", "?")
    if "OutOfMemory" in container_reason or "OutOfMemory" in reason:
        return (
            f"ECS task {arn} ran out of memory ({container_reason or reason}); give the task "
            "definition or its container more memory."
        )
    if "CannotPull" in container_reason or "CannotPull" in reason:
        return (
            f"ECS task {arn} could not pull its image ({container_reason or reason}); check the "
            "image name and that the task execution role may pull it."
        )
    if code == "UserInitiated" or reason.startswith("dagster-airflow:"):
        return f"ECS task {arn} was stopped before the step finished: {reason or code}."
    if code == "TaskFailedToStart":
        return f"ECS task {arn} failed to start: {reason or container_reason or code}."
    if code in ("SpotInterruption", "TerminationNotice"):
        return f"ECS task {arn} was interrupted ({code}: {reason}); a retry starts a new task."
    if exit_code == 0:
        return (
            f"the container {name!r} of ECS task {arn} exited with code 0, but its log {stream} "
            "holds no step result; check that the container logs there (awslogs_group, "
            "awslogs_stream_prefix)."
        )
    if exit_code is not None:
        return (
            f"the container {name!r} of ECS task {arn} exited with code {exit_code} before the "
            f"step finished ({reason or code or 'no stop reason'})."
        )
    return (
        f"ECS task {arn} stopped before its container {name!r} reported an exit code "
        f"({code or 'no stop code'}: {reason or container_reason or 'no reason given'})."
    )


class _Redact(logging.Filter):
    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        # A secret may appear as is, or escaped inside a JSON body.
        self.secrets = {v for s in secrets if s for v in (s, json.dumps(s)[1:-1])}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, ()
        return True


# The loggers that write request and response bodies at DEBUG: RunTask, DescribeTasks and
# StopTask carry the overrides, and so the credentials in 'environment' mode.
_BODY_LOGGERS = ("botocore.endpoint", "botocore.parsers")


@contextlib.contextmanager
def _redacted_from_botocore_debug(secrets: Iterable[str]) -> Iterator[None]:
    """Keep the credentials out of botocore's DEBUG lines, wherever Airflow's masker is not."""
    redact = _Redact(list(secrets))
    loggers = [logging.getLogger(name) for name in _BODY_LOGGERS] if redact.secrets else []
    for each in loggers:
        each.addFilter(redact)
    try:
        yield
    finally:
        for each in loggers:
            each.removeFilter(redact)


def _client_error(exc: Any) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'Error')}: {error.get('Message', exc)}"


@hookimpl
def dagster_airflow_register_runners(register):
    register(EcsRunner)
