"""Docker runner: each step in a fresh container of the job's image (Airflow side).

The docker SDK is imported inside the methods that need it, so loading the plugin costs nothing.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from dagster_airflow.connection import Connection
from dagster_airflow.errors import ConfigurationError, RunnerError
from dagster_airflow.model import StepRequest, try_tag
from dagster_airflow.options import Configured, OptionFields
from dagster_airflow.plugins import hookimpl
from dagster_airflow.runners.base import WORKER_COMMAND, RunContext
from dagster_airflow.runners.lifecycle import RemoteRunner, RunState
from dagster_airflow.runners.streams import LineStream, decode_lines
from dagster_airflow.step_log import StepLog
from dagster_airflow.step_result import SKIPPED, SUCCESS, StepResult

PULL_POLICIES = ("missing", "always", "never")
AUTO_REMOVE_POLICIES = ("success", "never", "force")

_GONE = object()  # the container was removed while we followed it


def _parse_mount(value: Any) -> tuple[str, str, str, bool]:
    """(source, target, type, read_only) from "src:dst[:ro]" or a mapping."""
    if isinstance(value, str):
        parts = value.split(":")
        if len(parts) in (2, 3) and all(parts[:2]) and (len(parts) == 2 or parts[2] in "rorw"):
            read_only = len(parts) == 3 and parts[2] == "ro"
            kind = "bind" if parts[0].startswith("/") else "volume"
            return parts[0], parts[1], kind, read_only
    elif isinstance(value, Mapping) and value.get("source") and value.get("target"):
        kind = value.get("type", "bind")
        if kind in ("bind", "volume") and set(value) <= {"source", "target", "type", "read_only"}:
            return str(value["source"]), str(value["target"]), kind, bool(value.get("read_only"))
    raise ConfigurationError(
        f"the docker runner's mount {value!r} is not understood; write it as "
        '"/host/path:/container/path[:ro]", "volume-name:/container/path" or '
        '{"source": ..., "target": ..., "type": "bind" or "volume", "read_only": true}.'
    )


_field = OptionFields("the docker runner")


@attrs.frozen
class DockerOptions:
    image: str = _field.field(
        attrs.converters.pipe(
            _field.string("image", example="my-dagster-code:1.0").converter, str.strip
        )
    )
    docker_url: str | None = _field.string(
        "docker_url", default=None, example="unix:///var/run/docker.sock"
    )
    docker_conn_id: str | None = _field.string("docker_conn_id", default=None, example="docker")
    pull: str = _field.one_of("pull", PULL_POLICIES, default="missing")
    environment: Mapping[str, str] = _field.env_map("environment")
    private_environment: Mapping[str, str] = _field.env_map("private_environment")
    mounts: Sequence[tuple[str, str, str, bool]] = _field.items(
        "mounts", _parse_mount, "a list of mounts", '["/host/path:/container/path:ro"]'
    )
    network_mode: str | None = _field.string("network_mode", default=None, example="host")
    working_dir: str | None = _field.string("working_dir", default=None, example="/opt/app")
    user: str | int | None = _field.any("user")
    auto_remove: str = _field.one_of("auto_remove", AUTO_REMOVE_POLICIES, default="success")
    timeout: float | None = _field.number("timeout", default=None, example="3600")
    command: Sequence[str] | None = _field.string_list(
        "command", '["python", "-m", "dagster_airflow", "execute-step"]'
    )
    stop_timeout: int = _field.number(
        "stop_timeout", default=10, example="10", inclusive=True, integer=True
    )


def registry_of(image: str) -> str:
    """The registry an image reference names (docker.io when it names none)."""
    from docker.auth import resolve_repository_name
    from docker.utils import parse_repository_tag

    repository, _ = parse_repository_tag(image)
    return resolve_repository_name(repository)[0]


class DockerRunner(Configured, RemoteRunner):
    """Runs ``dagster-airflow execute-step`` in a fresh container of ``image`` for each step.

    The image's own entrypoint is replaced by ``command``, so an image built for
    dagster-webserver works unchanged. Options (docs/docker.md has each in full):

    :param image: the image with Dagster, dagster-on-airflow[dagster] and the job's code.
    :param docker_url: the Docker daemon (default: DOCKER_HOST, else the local socket).
    :param docker_conn_id: an Airflow docker connection to log in to a private registry with.
    :param pull: ``missing`` (default), ``always`` or ``never``.
    :param environment: variables for the container, shown in the DAG file.
    :param private_environment: variables whose values are masked in every log.
    :param mounts: ``"/host:/container[:ro]"``, ``"volume:/container"`` or mappings.
    :param network_mode: ``host``, ``none``, a network's name ... (default: the daemon's).
    :param working_dir: the container's working directory (default: the image's).
    :param user: the user the step runs as (default: the image's).
    :param auto_remove: ``success`` (default: remove unless the step failed), ``never``,
        ``force`` (always remove).
    :param timeout: seconds a step may run before its container is stopped (default: no limit).
    :param command: the worker's command in the image (default: dagster-airflow execute-step).
    :param stop_timeout: seconds between SIGTERM and SIGKILL when a container is stopped.
    """

    name = "docker"
    options_class = DockerOptions
    run_noun = "container"
    output_waits = True  # its log stream is read in a thread: wait on it

    def configure(self) -> None:
        self.timeout = self.options.timeout  # the lifecycle's deadline
        self._client = None
        self._log = logging.getLogger(__name__)

    @property
    def command(self) -> list[str]:
        """The worker's command in the image."""
        return list(self.options.command or WORKER_COMMAND)

    # -- the Docker daemon -------------------------------------------------------------------

    def where(self) -> str:
        import os

        return self.docker_url or os.environ.get("DOCKER_HOST") or "the local Docker socket"

    def client(self):
        import docker
        from docker.errors import DockerException

        try:
            client = (
                docker.DockerClient(base_url=self.docker_url)
                if self.docker_url
                else docker.from_env()
            )
            client.ping()
        except DockerException as exc:
            raise RunnerError(
                f"cannot reach the Docker daemon at {self.where()!r}: {exc}; start it, or set "
                "the docker runner's docker_url option (or DOCKER_HOST) to where it listens."
            ) from exc
        return client

    def _login(self, client, context: RunContext) -> None:
        if not self.docker_conn_id:
            return
        from docker.errors import APIError

        conn = Connection.parse(context.connection(self.docker_conn_id), self.docker_conn_id)
        if conn is None:
            raise RunnerError(
                f"the docker runner's docker_conn_id {self.docker_conn_id!r} is not an Airflow "
                "connection; create it with the registry as host, the user as login and the "
                "password or token as password."
            )
        context.mask_values([conn.password])
        registry = f"{conn.host}:{conn.port}" if conn.port else conn.host
        extra = conn.extra
        context.log.info(
            "Logging in to registry %s as %s (connection %r)",
            registry,
            conn.login,
            self.docker_conn_id,
        )
        try:
            client.login(
                username=conn.login,
                password=conn.password,
                registry=registry,
                email=extra.get("email"),
                reauth=bool(extra.get("reauth", True)),
            )
        except APIError as exc:
            raise RunnerError(
                f"cannot log in to registry {registry!r} with connection "
                f"{self.docker_conn_id!r}: {exc.explanation or exc}; check its login and password."
            ) from exc

    def _ensure_image(self, client, log: logging.Logger) -> None:
        from docker.errors import APIError, ImageNotFound

        if self.pull != "always":
            try:
                client.images.get(self.image)
                return
            except ImageNotFound:
                if self.pull == "never":
                    raise RunnerError(
                        f"image {self.image!r} (registry {registry_of(self.image)!r}) is not on "
                        f"the Docker host {self.where()!r} and the docker runner's pull is "
                        "'never'; build or pull it there, or set pull to 'missing'."
                    ) from None
        registry = registry_of(self.image)
        log.info("Pulling image %s from %s", self.image, registry)
        try:
            client.images.pull(self.image)
        except APIError as exc:
            reason = str(exc.explanation or exc).strip().splitlines()[0]
            raise RunnerError(
                f"cannot pull image {self.image!r} from registry {registry!r} ({reason}); check "
                "the image's name and tag, and for a private registry set the docker runner's "
                "docker_conn_id to an Airflow connection holding its credentials."
            ) from exc

    # -- one step (the lifecycle's methods) -------------------------------------------------

    @staticmethod
    def labels(request: StepRequest) -> dict[str, str]:
        """The one tag vocabulary (StepRequest.tags) as container labels."""
        return request.tags(separator=".")

    @staticmethod
    def container_name(request: StepRequest) -> str | None:
        """A readable name unique to the Airflow try (None without one: the daemon picks)."""
        if request.task is None:
            return None
        task = request.task
        readable = re.sub(r"[^a-zA-Z0-9_.-]", "_", f"{task.dag_id}.{task.task_id}")[:80]
        return f"dagster-airflow-{readable}-{task.fingerprint()[:12]}"

    def prepare(self, request: StepRequest, context: RunContext) -> None:
        context.mask_values(self.private_environment.values())
        self._client = self.client()
        self._log = context.log

    def find(self, request: StepRequest, context: RunContext) -> _Followed | None:
        """The container already started for this Airflow try, if any."""
        container = self._existing(self._client, request)
        if container is None:
            return None
        context.log.info(
            "Following container %s (%s), already %s for this try",
            container.name,
            container.short_id,
            container.status,
        )
        return _Followed(container)

    def _existing(self, client, request: StepRequest):
        if request.task is None:
            return None
        wanted = [f"{k}={v}" for k, v in request.task.tags(separator=".").items()]
        for container in client.containers.list(all=True, filters={"label": wanted}):
            if container.status in ("running", "paused", "exited", "stopped"):
                return container
            container.remove(force=True)  # created but never started: start afresh
        return None

    def earlier_runs(self, request: StepRequest, context: RunContext) -> list[_Followed]:
        """The containers of this task's earlier tries that still run, by their labels."""
        wanted = [f"{k}={v}" for k, v in request.task.tags_of_every_try(".").items()]
        running = self._client.containers.list(filters={"label": wanted})  # running ones only
        tried = try_tag(".")
        return [
            _Followed(c) for c in running if int(c.labels.get(tried, "0")) < request.task.try_number
        ]

    def start(self, request: StepRequest, context: RunContext) -> _Followed:
        self._login(self._client, context)
        self._ensure_image(self._client, context.log)
        container = self._create(self._client, request, context, context.log)
        context.log.info("Started container %s (%s)", container.name, container.short_id)
        return _Followed(container)

    def _create(self, client, request: StepRequest, context: RunContext, log):
        from docker.errors import APIError
        from docker.types import Mount

        environment = {
            "PYTHONUNBUFFERED": "1",
            **self.environment,
            **self.private_environment,
            **self.worker_env(request, context, {**self.environment, **self.private_environment}),
        }
        mounts = [
            Mount(target=target, source=source, type=kind, read_only=read_only)
            for source, target, kind, read_only in self.mounts
        ]
        log.info(
            "Starting a container of %s: %s (environment: %s)",
            self.image,
            " ".join(self.command),
            ", ".join(sorted(environment)),
        )
        try:
            return client.containers.run(
                self.image,
                entrypoint=self.command[:1],
                command=self.command[1:] or None,
                environment=environment,
                labels=self.labels(request),
                name=self.container_name(request),
                mounts=mounts,
                network_mode=self.network_mode,
                working_dir=self.working_dir,
                user=self.user,
                detach=True,
            )
        except APIError as exc:
            if exc.status_code == 409:  # another process started this try's container first
                found = self._existing(client, request)
                if found is not None:
                    return found
            reason = str(exc.explanation or exc).strip().splitlines()[0]
            raise RunnerError(
                f"cannot start a container of image {self.image!r}: {reason}; check the docker "
                "runner's mounts, network_mode, user and working_dir options."
            ) from exc

    def describe(self, handle: _Followed) -> str:
        return f"container {handle.container.name} ({handle.container.short_id})"

    def handle_to_data(self, handle: _Followed) -> str:
        return handle.container.id

    def handle_from_data(self, data: str, request: StepRequest, context: RunContext) -> _Followed:
        """The container of a deferred step, by its id; its output is read from its start."""
        from docker.errors import NotFound

        try:
            return _Followed(self._client.containers.get(data))
        except NotFound:
            raise RunnerError(
                f"the step's container {data[:12]} is gone from the Docker host "
                f"{self.where()!r}: it was removed while the step was deferred."
            ) from None

    def read_output(self, handle: _Followed, wait: float, final: bool = False) -> Iterable[str]:
        """The container's output, from its start, its log stream followed in a thread. A
        finished container's stream that did not end (podman 4.3 under load may never end it,
        as seen in this project's suite) is closed, and the rest read from its whole log."""
        from docker.errors import APIError

        if handle.stream is None:
            stream = self._unless_gone(lambda: handle.container.logs(stream=True, follow=True))
            if stream is _GONE:
                handle.gone = True
                return []
            handle.stream = LineStream(stream, name="docker-logs")
        lines: list[str] = []
        try:
            lines = handle.stream.read(wait)
        except APIError as exc:
            if not self._gone(exc):
                raise
        if final and not handle.ended:
            handle.close()
            output = self._unless_gone(lambda: handle.container.logs(stream=False, follow=False))
            if output is not _GONE:
                lines += list(decode_lines([output]))[handle.stream.count :]
        return lines

    def output_ended(self, handle: _Followed, step_log: StepLog) -> bool:
        return handle.ended

    def state(self, handle: _Followed) -> RunState:
        """From the container's state, not the engine's wait endpoint: podman 4.3 under load
        may miss the exit of a container that ended as the wait began, and then never answers
        (seen in this project's suite)."""
        container = handle.container
        if self._unless_gone(container.reload) is _GONE:
            return RunState("gone", finished=True)
        state = container.attrs.get("State") or {}
        status = state.get("Status") or "unknown"
        # "stopped": podman's name for exited before its cleanup process has run.
        if status in ("exited", "dead", "stopped"):
            return RunState(status, finished=True, exit_code=int(state.get("ExitCode", -1)))
        return RunState(status, starting=status == "created")

    def _unless_gone(self, call: Callable[[], Any]) -> Any:
        """``call()``, or ``_GONE`` when the container was removed meanwhile."""
        from docker.errors import APIError

        try:
            return call()
        except APIError as exc:
            if not self._gone(exc):
                raise
            return _GONE

    def _gone(self, exc) -> bool:
        """Whether an API error means the container was removed while we followed it: by our
        kill(), or by another runner following the same container (podman may answer 500)."""
        from docker.errors import NotFound

        return (
            isinstance(exc, NotFound)
            or self.stopped is not None
            or "no such container" in str(exc.explanation or "")
        )

    def stop(self, handle: _Followed, reason: str) -> None:
        from docker.errors import NotFound

        with contextlib.suppress(NotFound):
            handle.container.stop(timeout=self.stop_timeout)

    def cleanup(self, handle: _Followed, result: StepResult | None, stopped: str | None) -> None:
        """Remove the container per auto_remove: kept only when the step failed on its own and
        the policy is 'success', or always with 'never'."""
        from docker.errors import APIError, NotFound

        handle.close()
        if self.auto_remove == "never":
            return
        ended_well = result is not None and result.status in (SUCCESS, SKIPPED)
        if self.auto_remove == "success" and not ended_well and stopped is None:
            self._log.info("Keeping %s of the failed step for inspection", self.describe(handle))
            return
        try:
            handle.container.remove(force=True)
        except NotFound:
            pass
        except APIError as exc:
            if exc.status_code != 409:  # 409: already being removed
                self._log.warning("Could not remove %s: %s", self.describe(handle), exc)


class _Followed:
    """A container this runner follows, and its log stream once opened."""

    def __init__(self, container) -> None:
        self.container = container
        self.stream: LineStream | None = None
        self.gone = False

    @property
    def ended(self) -> bool:
        """Whether its whole output was read: the stream ended, or the container is gone."""
        return self.gone or (self.stream is not None and self.stream.ended)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


@hookimpl
def dagster_airflow_register_runners(register):
    register(DockerRunner)
