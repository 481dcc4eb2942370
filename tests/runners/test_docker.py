"""The docker runner against a real container engine: rootful podman with its Docker API.

The suite starts `podman system service` on a private socket and builds its own image (this
machine's Python, no registry); the project and its virtual environment are bind-mounted
read-only at their own paths, so the image holds neither Dagster nor the job's code. The image's
ENTRYPOINT is dagster-webserver, as an image built for Dagster's UI would have: every test here
passes only because the runner overrides it.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
import shlex
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import attrs
import boto3
import pytest
from airflow.sdk.log import _secrets_masker

from dagster_airflow.errors import ConfigurationError, RunnerError
from dagster_airflow.model import CodeLocation, StepRequest, StorageSpec, TaskRef, dagster_run_id
from dagster_airflow.runners.docker import DockerRunner
from dagster_airflow.scaffold.render import relocate
from dagster_airflow.step_result import FAILURE, SUCCESS
from dagster_airflow.storage.filesystem import FilesystemStorage
from dagster_airflow.testing.contracts import RunnerContract
from dagster_airflow.testing.run_context import run_context_for, run_step
from dagster_airflow.testing.task_log import TaskLog
from harness.podman import PodmanService, build_python_image, podman_available
from tests.conftest import EXAMPLES, JOBS, ROOT, run_cli, scaffold

pytestmark = pytest.mark.skipif(
    not podman_available(), reason="podman and runc are not installed (make test installs them)"
)

IMAGE = "localhost/dagster-airflow-test:latest"
LABEL = "dagster-airflow.dagster_run_id"


class RefusingRegistry:
    """A loopback port that accepts connections and closes them: a registry that cannot serve,
    which counts how often someone tried."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


class PrivateRegistry:
    """A registry on loopback (plain HTTP) that wants one user's password and has no images:
    enough to see a runner log in, and pull with the credentials, without any real registry."""

    USER, PASSWORD = "deploy-bot", "pa55word-7f3e"

    def __init__(self) -> None:
        import base64
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        expected = "Basic " + base64.b64encode(f"{self.USER}:{self.PASSWORD}".encode()).decode()
        seen = self.requests = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                authorized = self.headers.get("Authorization") == expected
                seen.append((self.command, self.path, authorized))
                if not authorized:
                    self._answer(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                elif self.path.rstrip("/") == "/v2":
                    self._answer(200, {})
                else:
                    self._answer(404, {"errors": [{"code": "MANIFEST_UNKNOWN"}]})

            do_HEAD = do_GET

            def _answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="test"')
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # Podman's Docker API logs in over plain HTTP only to "localhost:PORT" (local testing).
        self.address = f"localhost:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def private_registry():
    registry = PrivateRegistry()
    yield registry
    registry.close()


@pytest.fixture(scope="session")
def refusing_registry():
    registry = RefusingRegistry()
    yield registry
    registry.close()


@pytest.fixture(scope="session")
def podman(tmp_path_factory, refusing_registry, private_registry):
    # The test registries are plain HTTP: podman may try them only if its config says so.
    service = PodmanService(
        tmp_path_factory.mktemp("podman"),
        insecure_registries=[refusing_registry.address, private_registry.address],
    )
    service.start()
    yield service
    service.stop()


def docs_dockerfile() -> str:
    """The Dockerfile docs/docker.md shows, for a registry-less machine: this machine's Python
    replaces its base image, and the project's virtual environment, mounted read-only at run
    time, replaces its pip install."""
    text = (ROOT / "docs" / "docker.md").read_text()
    dockerfile = re.search(r"```dockerfile\n(.*?)```", text, re.S).group(1)
    return "".join(
        line
        for line in dockerfile.splitlines(keepends=True)
        if not line.startswith(("FROM ", "RUN pip ", "COPY dagster_on_airflow"))
    )


@pytest.fixture(scope="session")
def image(podman, tmp_path_factory) -> str:
    path = [f"{sys.prefix}/bin", f"{sys.base_prefix}/bin", "/usr/bin", "/bin"]
    context = [EXAMPLES / "demo.py", EXAMPLES / "demo.yml"]
    workdir = tmp_path_factory.mktemp("image")
    return build_python_image(podman, workdir, IMAGE, path, docs_dockerfile(), context)


def project_mounts() -> list[str]:
    """The project (with its editable install) and the virtual environment, read-only."""
    mounts = [f"{ROOT}:{ROOT}:ro"]
    if not Path(sys.prefix).is_relative_to(ROOT):
        mounts.append(f"{sys.prefix}:{sys.prefix}:ro")
    return mounts


@pytest.fixture(autouse=True)
def no_container_left_behind(request):
    """After each test, the engine holds no container of ours, running or stopped."""
    yield
    if "podman" in request.fixturenames:
        podman = request.getfixturevalue("podman")
        left = podman.containers(label=LABEL)
        assert left == [], f"containers left behind: {[c['Names'] for c in left]}"


@pytest.fixture
def make_runner(podman, image, tmp_path):
    def make(**options) -> DockerRunner:
        options.setdefault("mounts", [*project_mounts(), f"{tmp_path}:{tmp_path}"])
        return DockerRunner(image=image, docker_url=podman.base_url, **options)

    return make


def containers_request(tmp_path, step_key, run_config=None, task=None) -> StepRequest:
    return StepRequest(
        code_location=CodeLocation(python_file=str(JOBS / "containers.py")),
        job_name="containers",
        step_key=step_key,
        run_id=str(uuid.uuid4()),
        run_config=run_config or {"ops": {"sleepy": {"config": {"seconds": 0}}}},
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
        task=task,
    )


class TestDockerRunnerContract(RunnerContract):
    step_timeout = 40.0
    kills_before_start = reattaches = times_out = defers = stops_earlier_tries = True
    start_method = "start"

    @pytest.fixture
    def runner_factory(self, make_runner):
        return lambda: make_runner(stop_timeout=5)

    @pytest.fixture
    def storage_spec(self, tmp_path):
        return StorageSpec("filesystem", {"base_dir": str(tmp_path)})

    def test_a_failing_step_reports_the_ops_error(
        self, runner_factory, code_location, storage_spec, run_id, task_log, podman
    ):
        super().test_a_failing_step_reports_the_ops_error(
            runner_factory, code_location, storage_spec, run_id, task_log
        )
        # auto_remove 'success' (the default) keeps a failed step's container for inspection.
        # (podman says "stopped" until its cleanup process has run, which may lag under load.)
        kept = podman.containers(label=LABEL)
        try:
            assert [c["State"] for c in kept] in (["exited"], ["stopped"])
        finally:
            for container in kept:
                podman.podman("rm", "--force", container["Id"])

    def test_the_image_entrypoint_is_one_the_runner_must_override(self, podman, image):
        config = podman.client().images.get(image).attrs["Config"]
        assert config["Entrypoint"][0] == "dagster-webserver"
        assert config["WorkingDir"] == "/opt/dagster/app"


def test_private_environment_reaches_the_step_and_is_masked(make_runner, tmp_path, task_log):
    runner = make_runner(
        environment={"PUBLIC_SETTING": "visible-42"},
        private_environment={"DEMO_TOKEN": "tok-3f9a1c77"},
    )
    # The job's variables (the DAG's ENVIRONMENT, as the operator rendered it) go in too.
    job_env = {"WAREHOUSE_PASSWORD": "wh-pass-8c1e4d0b7"}
    request = containers_request(tmp_path, "show_environment")
    result = run_step(runner, request, task_log.logger, job_env=job_env)
    assert result.status == SUCCESS, result.error
    assert "PUBLIC_SETTING is visible-42" in task_log.text
    assert "WAREHOUSE_PASSWORD is *** (17 characters)" in task_log.text
    assert "wh-pass-8c1e4d0b7" not in task_log.text
    # The step saw the value (it is what the worker redacted in the container), and Airflow's
    # masker now redacts it from every task log line too.
    assert "DEMO_TOKEN is ***" in task_log.text and "tok-3f9a1c77" not in task_log.text
    masked = _secrets_masker().redact("DEMO_TOKEN is tok-3f9a1c77")
    assert masked == "DEMO_TOKEN is ***"
    # The runner's own lines name variables, never values.
    ours = [
        r.getMessage() for r in task_log.records if r.module != "step_log" and "container" in r.msg
    ]
    assert ours and not any("tok-3f9a1c77" in line for line in ours)
    assert any("DEMO_TOKEN" in line for line in ours)


def test_timeout_stops_and_removes_the_container(make_runner, podman, tmp_path):
    runner = make_runner(timeout=5, stop_timeout=2)
    request = containers_request(
        tmp_path, "sleepy", {"ops": {"sleepy": {"config": {"seconds": 600}}}}
    )
    started = time.monotonic()
    result = runner.run(request, run_context_for(request, logging.getLogger()))
    assert time.monotonic() - started < 30
    assert result.status == FAILURE
    assert result.error.class_name == "StepTimeout"
    assert "longer than the docker runner's timeout of 5s" in result.error.message


def test_a_running_container_for_the_same_try_is_followed_not_restarted(
    make_runner, podman, tmp_path
):
    task = TaskRef("dag", "sleepy", "manual__2026-11-25", map_index=-1, try_number=1)
    request = containers_request(
        tmp_path, "sleepy", {"ops": {"sleepy": {"config": {"seconds": 2}}}}, task=task
    )
    first_results = []
    first = threading.Thread(
        target=lambda: first_results.append(
            make_runner().run(request, run_context_for(request, logging.getLogger()))
        )
    )
    first.start()
    # Under load podman shows the container "created" for a while before it runs: wait for the
    # state this test is about, not for the container's mere existence.
    deadline = time.monotonic() + 60
    started = []
    while time.monotonic() < deadline:
        started = podman.containers(label=LABEL)
        if started and started[0]["State"] != "created":
            break
        time.sleep(0.2)
    assert [c["State"] for c in started] == ["running"]

    # As after an Airflow worker restart: the same try runs again while its container runs.
    with TaskLog() as second_log:
        second = make_runner().run(request, run_context_for(request, second_log.logger))

    first.join(60)
    assert second.status == SUCCESS, second.error
    assert first_results[0].status == SUCCESS
    followed = [r for r in second_log.records if "Following" in r.msg]
    assert followed and started[0]["Id"].startswith(followed[0].args[1])
    assert not any("Started container" in r.msg for r in second_log.records)


def test_a_new_try_stops_the_container_an_earlier_try_left_running(make_runner, podman, tmp_path):
    # Try 1 started its container and deferred; its task was then cleared while no triggerer
    # held its trigger, so the container runs on. Try 2 must not run the step beside it.
    first = TaskRef("dag", "sleepy", "manual__2026-12-07", map_index=0, try_number=1)
    sibling = TaskRef("dag", "sleepy", "manual__2026-12-07", map_index=1, try_number=1)
    sleep_long = {"ops": {"sleepy": {"config": {"seconds": 600}}}}
    request = containers_request(tmp_path, "sleepy", sleep_long, task=first)
    request_of_sibling = attrs.evolve(request, task=sibling)
    runner = make_runner(stop_timeout=2)
    try:
        for started in (request, request_of_sibling):
            make_runner().begin(started, run_context_for(started, logging.getLogger()))
        containers = podman.containers(label=LABEL)
        (left,) = [c for c in containers if c["Labels"]["dagster-airflow.map_index"] == "0"]

        again = attrs.evolve(
            request,
            run_config={"ops": {"sleepy": {"config": {"seconds": 0}}}},
            task=attrs.evolve(first, try_number=2),
        )
        with TaskLog() as log:
            result = runner.run(again, run_context_for(again, log.logger))

        assert result.status == SUCCESS, result.error
        states = {c["Id"]: c["State"] for c in podman.containers(label=LABEL)}
        assert left["Id"] not in states  # stopped, and removed as auto_remove says
        # The sibling (another map index) runs on.
        assert list(states.values()) == ["running"], states
        (line,) = [r.getMessage() for r in log.records if "earlier try" in r.getMessage()]
        assert line.startswith(f"Stopping container {left['Names'][0].lstrip('/')} ("), line
        assert line.endswith(
            "which an earlier try of this task started and which still runs: a later Airflow "
            "try of the task started; a step runs once at a time"
        ), line
    finally:
        for container in podman.containers(label=LABEL):
            podman.podman("rm", "--force", container["Id"])


class StalledStream:
    """A real container's log stream that stops after its first ``passed`` chunks and then never
    ends until closed: what podman 4.3 under load may do to a container that has exited."""

    def __init__(self, stream, passed: int) -> None:
        self.stream, self.passed, self.closed = stream, passed, threading.Event()

    def __iter__(self):
        for number, chunk in enumerate(self.stream):
            if number >= self.passed:
                break
            yield chunk
        self.closed.wait()

    def close(self) -> None:
        self.closed.set()
        self.stream.close()


class StallingContainer:
    """A real container whose followed log stalls (every other call goes to the container)."""

    def __init__(self, container, passed: int) -> None:
        self._container, self._passed = container, passed
        self.streams: list[StalledStream] = []

    def __getattr__(self, name):
        return getattr(self._container, name)

    def logs(self, **kwargs):
        logs = self._container.logs(**kwargs)
        if kwargs.get("stream"):
            self.streams.append(StalledStream(logs, self._passed))
            return self.streams[-1]
        return logs


def test_a_log_stream_that_never_ends_after_the_exit_does_not_hang_the_step(
    make_runner, monkeypatch, tmp_path, task_log
):
    containers = []
    create = DockerRunner._create

    def stalling_create(self, *args, **kwargs):
        containers.append(StallingContainer(create(self, *args, **kwargs), passed=2))
        return containers[-1]

    monkeypatch.setattr(DockerRunner, "_create", stalling_create)
    runner = make_runner(environment={"PUBLIC_SETTING": "visible-42"})
    results = []
    request = containers_request(tmp_path, "show_environment")
    thread = threading.Thread(
        target=lambda: results.append(
            runner.run(request, run_context_for(request, task_log.logger))
        )
    )
    thread.start()
    thread.join(60)
    for stream in containers[0].streams if containers else ():
        stream.close()  # lets a runner that still waits on it go, so the test fails, not hangs
    thread.join(30)
    assert results, "the runner still followed the log of a container that had exited"
    assert results[0].status == SUCCESS, results[0].error
    # The lines after the stall came from the finished container's log, each exactly once.
    assert task_log.text.count("PUBLIC_SETTING is visible-42") == 1


def test_a_missing_image_names_the_image_and_its_registry(podman, refusing_registry):
    image = f"{refusing_registry.address}/team/jobs:1.0"
    before = refusing_registry.connections
    runner = DockerRunner(image=image, docker_url=podman.base_url, pull="never")
    with pytest.raises(RunnerError) as caught:
        run_step(runner, containers_request(Path("/tmp"), "boom"), logging.getLogger())
    assert str(caught.value) == (
        f"image {image!r} (registry {refusing_registry.address!r}) is not on the Docker host "
        f"{podman.base_url!r} and the docker runner's pull is 'never'; build or pull it there, "
        "or set pull to 'missing'."
    )
    assert refusing_registry.connections == before, "pull='never' contacted the registry"

    runner = DockerRunner(image=image, docker_url=podman.base_url)
    with pytest.raises(RunnerError) as caught:
        run_step(runner, containers_request(Path("/tmp"), "boom"), logging.getLogger())
    message = str(caught.value)
    assert message.startswith(
        f"cannot pull image {image!r} from registry {refusing_registry.address!r} ("
    )
    assert message.endswith("docker_conn_id to an Airflow connection holding its credentials.")
    assert refusing_registry.connections > before


def test_docker_conn_id_logs_in_to_the_private_registry_before_pulling(
    podman, private_registry, monkeypatch, task_log
):
    registry = private_registry
    monkeypatch.setenv(
        "AIRFLOW_CONN_TEAM_REGISTRY",
        f"docker://{registry.USER}:{registry.PASSWORD}@{registry.address}",
    )
    image = f"{registry.address}/team/jobs:1.0"
    runner = DockerRunner(image=image, docker_url=podman.base_url, docker_conn_id="team_registry")
    with pytest.raises(RunnerError) as caught:
        run_step(runner, containers_request(Path("/tmp"), "boom"), task_log.logger)
    # Logged in (the registry saw the password), then asked for the image with it.
    assert ("GET", "/v2/", True) in registry.requests, (str(caught.value), registry.requests)
    assert any(path.startswith("/v2/team/jobs/") and ok for _, path, ok in registry.requests)
    assert str(caught.value).startswith(
        f"cannot pull image {image!r} from registry {registry.address!r} ("
    )
    assert f"Logging in to registry {registry.address} as deploy-bot" in task_log.text
    assert registry.PASSWORD not in task_log.text
    assert _secrets_masker().redact(f"x {registry.PASSWORD}") == "x ***"

    # A wrong password fails at login, in one sentence naming the registry and the connection.
    monkeypatch.setenv(
        "AIRFLOW_CONN_TEAM_REGISTRY", f"docker://{registry.USER}:wrong-one@{registry.address}"
    )
    with pytest.raises(RunnerError) as caught:
        run_step(runner, containers_request(Path("/tmp"), "boom"), logging.getLogger("t"))
    assert str(caught.value).startswith(
        f"cannot log in to registry {registry.address!r} with connection 'team_registry': "
    )


def test_an_unknown_docker_connection_is_one_sentence(podman, image):
    runner = DockerRunner(image=image, docker_url=podman.base_url, docker_conn_id="no_such_reg")
    with pytest.raises(RunnerError, match="docker_conn_id 'no_such_reg' is not an Airflow conn"):
        run_step(runner, containers_request(Path("/tmp"), "boom"), logging.getLogger())


def test_an_unreachable_daemon_names_where_it_looked(tmp_path):
    url = f"unix://{tmp_path}/nothing.sock"
    with pytest.raises(RunnerError, match=f"cannot reach the Docker daemon at '{url}'"):
        run_step(
            DockerRunner(image="x", docker_url=url),
            containers_request(tmp_path, "boom"),
            logging.getLogger(),
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pull": "sometimes"}, "'pull' must be one of missing, always, never, got 'sometimes'"),
        ({"auto_remove": True}, "'auto_remove' must be one of success, never, force, got True"),
        ({"timeout": 0}, "'timeout' must be a number of seconds above 0, got 0"),
        ({"timeout": -5}, "'timeout' must be a number of seconds above 0, got -5"),
        ({"mounts": "/a:/b"}, "'mounts' must be a list of mounts, got '/a:/b'"),
        ({"mounts": ["/a"]}, "mount '/a' is not understood"),
        ({"command": "dagster-airflow execute-step"}, "'command' must be a list of strings"),
        ({"environment": ["A=1"]}, "'environment' must be a mapping"),
        ({"stop_timeout": "10s"}, "'stop_timeout' must be a whole number of seconds of at least"),
    ],
)
def test_wrong_options_are_one_sentence(options, message):
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        DockerRunner(image="my-image", **options)


@pytest.mark.airflow
def test_demo_end_to_end_through_airflow_with_filesystem_storage(
    airflow_home, podman, image, tmp_path
):
    """Scaffolded on this machine for the image of docs/docker.md, with the code in the image at
    /opt/dagster/app; the steps share the storage directory through a bind mount."""
    storage_dir = tmp_path / "storage"
    storage_dir.mkdir()
    mounts = [*project_mounts(), f"{storage_dir}:{storage_dir}"]
    text = scaffold(
        "demo_pipeline",
        *("-f", "demo.py", "-e", "demo.yml", "-d", str(EXAMPLES)),
        *("--image-code-root", "/opt/dagster/app", "--dag-id", "docker_demo"),
        *("--runner", "docker", "--runner-option", f"image={image}"),
        *("--runner-option", f"docker_url={podman.base_url}"),
        *("--runner-option", f"mounts={json.dumps(mounts)}"),
        *("--storage", "filesystem", "--storage-option", f"base_dir={storage_dir}"),
        cwd=EXAMPLES,
    )
    assert '"python_file": "/opt/dagster/app/demo.py"' in text
    airflow_home.install(text, "docker_demo.py")

    result = airflow_home.dags_test("docker_demo")

    assert result.succeeded, result.output[-3000:]
    assert set(result.states.values()) == {"success"} and len(result.states) == 5
    run_id = dagster_run_id("docker_demo", result.run_id)
    storage = FilesystemStorage(base_dir=str(storage_dir))
    with storage.open_read(storage.key(run_id, "summarize", "result")) as stream:
        assert pickle.load(stream) == {"letters": {"b": 2, "a": 2, "r": 2}, "total": 6}
    log = result.task_log("summarize")
    assert f"Starting a container of {image}: dagster-airflow execute-step" in log
    # Deferred (the default), `airflow dags test` runs the trigger inline: its lines show too.
    assert "Deferring to the triggerer while the step's container runs" in log
    # No scheduler to race with there: the inline trigger fires as soon as the step has ended.
    assert "the trigger fires in" not in log
    assert "Letter counts: {'b': 2, 'a': 2, 'r': 2}" in log
    assert f"Stored output 'result' at {storage_dir / run_id / 'summarize' / 'result'}" in log


def docs_scaffold_command() -> list[str]:
    text = (ROOT / "docs" / "docker.md").read_text()
    (line,) = [
        line[2:]
        for block in re.findall(r"```console\n(.*?)```", text, re.S)
        for line in block.splitlines()
        if line.startswith("$ dagster-airflow scaffold")
    ]
    return shlex.split(line)[1:]


def test_the_docs_scaffold_command_writes_what_the_docs_show():
    text = (ROOT / "docs" / "docker.md").read_text()
    shown = re.search(r"writes, among the rest:\n\n```python\n(.*?)```", text, re.S).group(1)
    done = run_cli(*docs_scaffold_command())
    assert done.returncode == 0, done.stderr
    assert shown in done.stdout


@pytest.mark.airflow
def test_demo_end_to_end_through_airflow_with_s3_storage(
    airflow_home, podman, image, moto_server, monkeypatch
):
    """The docs' scaffold command for the docs' image, with the storage defaulting to s3 (moto,
    reached from the containers over the host network) and the credentials in a connection."""
    bucket = "docker-demo"
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=bucket)
    extra = urllib.parse.urlencode({"endpoint_url": moto_server, "region_name": "us-east-1"})
    monkeypatch.setitem(
        airflow_home.env, "AIRFLOW_CONN_AWS_DEFAULT", f"aws://AKIADOCKER:{secret}@/?{extra}"
    )
    args = [
        {"image=registry.example.com/team/demo:1.0": f"image={image}"}.get(arg, arg)
        for arg in docs_scaffold_command()
    ]
    args = [{"bucket=my-dagster-intermediates": f"bucket={bucket}"}.get(a, a) for a in args]
    args += ["--dag-id", "docker_s3", "--runner-option", f"docker_url={podman.base_url}"]
    args += ["--runner-option", f"mounts={json.dumps(project_mounts())}"]
    args += ["--runner-option", "network_mode=host"]
    text = scaffold(*args[1:])
    assert '"name": "s3",' in text and '"bucket": "docker-demo",' in text
    assert secret not in text
    airflow_home.install(text, "docker_s3.py")

    result = airflow_home.dags_test("docker_s3")

    assert result.succeeded, result.output[-3000:]
    assert set(result.states.values()) == {"success"} and len(result.states) == 5
    run_id = dagster_run_id("docker_s3", result.run_id)
    key = f"dagster-airflow/{run_id}/summarize/result"
    assert result.xcoms["summarize"] == {"result": f"s3://{bucket}/{key}"}
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert pickle.loads(body) == {"letters": {"b": 2, "a": 2, "r": 2}, "total": 6}
    log = result.task_log("summarize")
    assert f"Loaded input 'counts' from s3://{bucket}/dagster-airflow/{run_id}/" in log
    # The credentials reach each container's environment, never a log line.
    assert "AWS_SECRET_ACCESS_KEY" in log
    assert secret not in result.output


@pytest.mark.airflow
def test_failure_timeout_and_environment_through_airflow(airflow_home, podman, image, tmp_path):
    """What an Airflow user sees: a failed step fails its task with the op's error, Airflow's
    execution_timeout stops and removes its container, the environment reaches the step."""
    token = f"tok-{uuid.uuid4().hex[:12]}"
    storage_dir = tmp_path / "storage"
    storage_dir.mkdir()
    config = tmp_path / "containers.yml"
    config.write_text(json.dumps({"ops": {"sleepy": {"config": {"seconds": 600}}}}))
    mounts = [*project_mounts(), f"{storage_dir}:{storage_dir}"]
    text = scaffold(
        *("containers", "-f", str(JOBS / "containers.py"), "-e", str(config)),
        *("--runner", "docker", "--runner-option", f"image={image}"),
        *("--runner-option", f"docker_url={podman.base_url}"),
        *("--runner-option", f"mounts={json.dumps(mounts)}"),
        *("--runner-option", "auto_remove=force", "--runner-option", "stop_timeout=3"),
        *("--runner-option", "environment={PUBLIC_SETTING: visible-42}"),
        *("--runner-option", f"private_environment={{DEMO_TOKEN: {token}}}"),
        *("--storage", "filesystem", "--storage-option", f"base_dir={storage_dir}"),
    )
    # A scaffolded task is retried only when Dagster retries its step: a failure is final.
    assert re.search(r"retries=\d", text) is None and '"dagster_retries_only": True' in text
    sleepy = 'DagsterOperator(task_id="sleepy")'
    assert sleepy in text  # the step key is written only where it is not the task id
    text = text.replace(
        sleepy,
        'DagsterOperator(task_id="sleepy", execution_timeout=datetime.timedelta(seconds=12))',
    )
    airflow_home.install(text, "containers.py")

    result = airflow_home.dags_test("containers")

    assert result.states == {"show_environment": "success", "boom": "failed", "sleepy": "failed"}
    boom = result.task_log("boom")
    assert "about to fail" in boom
    assert "ValueError: the container step failed on purpose" in boom
    assert re.search(r'File ".*tests/jobs/containers.py", line \d+, in boom', boom)
    sleepy = result.task_log("sleepy")
    assert "AirflowTaskTimeout" in sleepy, sleepy[-3000:]
    # Deferred, the trigger enforces execution_timeout (Airflow 3.3 does not) and stops it.
    assert "The task ran longer than its execution_timeout" in sleepy, sleepy[-3000:]
    shown = result.task_log("show_environment")
    assert "PUBLIC_SETTING is visible-42" in shown
    # The private value reached the step, whose worker redacted it from what it printed (even
    # where, as in `airflow dags test`, Airflow's masker does not redact the task log); the
    # runner's own lines name it, never show it.
    assert "DEMO_TOKEN is ***" in shown and token not in result.output
    starting = [line for line in shown.splitlines() if "Starting a container" in line]
    assert "DEMO_TOKEN" in starting[0] and token not in starting[0]
    # auto_remove 'force': every container is gone, the timed-out one too (checked after each
    # test by no_container_left_behind).


def test_image_code_root_moves_the_code_locations_paths_into_the_image():
    location = CodeLocation(
        python_file="/home/me/proj/jobs/demo.py", working_directory="/home/me/proj"
    )
    assert relocate(location, "/home/me/proj", "/opt/dagster/app") == CodeLocation(
        python_file="/opt/dagster/app/jobs/demo.py", working_directory="/opt/dagster/app"
    )
    with pytest.raises(ConfigurationError) as caught:
        relocate(CodeLocation(python_file="/elsewhere/x.py"), "/home/me/proj", "/opt/app")
    assert str(caught.value) == (
        "the code location's file '/elsewhere/x.py' is not under '/home/me/proj', so its path "
        "inside the image is unknown; pass -d with the directory the image copies to "
        "--image-code-root."
    )
    with pytest.raises(ConfigurationError, match="'opt/app' is not an absolute path"):
        relocate(location, "/home/me/proj", "opt/app")
