"""The ECS runner against moto server on loopback.

moto runs no container, so most tests drive the control plane: they write the task's CloudWatch
log events and set its exit code and stop reason through moto's in-memory backend. The contract
tests and the end-to-end DAG run use ``EcsAgent``, which runs each task's overridden command as a
local process, as the ECS agent would run the container.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import pickle
import re
import shlex
import threading
import time
import urllib.parse
import uuid

import attrs
import pytest

from dagster_airflow.errors import ConfigurationError
from dagster_airflow.model import (
    REQUEST_ENV_VAR,
    CodeLocation,
    StepRequest,
    StorageSpec,
    TaskRef,
    dagster_run_id,
)
from dagster_airflow.options import option_names
from dagster_airflow.redaction import SECRET_NAMES_ENV_VAR
from dagster_airflow.runners.ecs import (
    CloudWatchLogReader,
    EcsRunner,
    _aws_network_configuration,
    started_by,
)
from dagster_airflow.runners.lifecycle import SUPERSEDED
from dagster_airflow.step_result import FAILURE, STOPPED, SUCCESS, TIMEOUT, StepError, StepEvent
from dagster_airflow.testing.contracts import RunnerContract
from dagster_airflow.testing.run_context import run_context_for, run_step
from dagster_airflow.testing.task_log import TaskLog
from harness.ecs import EcsAgent, MotoEcs
from tests.conftest import EXAMPLES, ROOT, run_cli, scaffold
from tests.e2e.test_e2e_storage import STEPS, expected_summary

LOG_GROUP = "/ecs/dagster-steps"
CONTROL = "control"  # a cluster whose tasks the tests play by hand
AGENT = "agent"  # a cluster whose tasks the agent runs
CONN_ID = "aws_ecs_test"


def register(ecs, family: str, prefix: str | None, containers=("step",)) -> None:
    definitions = []
    for name in containers:
        definition = {"name": name, "image": "example/dagster-step:1", "memory": 512}
        if prefix:
            definition["logConfiguration"] = {
                "logDriver": "awslogs",
                "options": {"awslogs-group": LOG_GROUP, "awslogs-stream-prefix": prefix},
            }
        definitions.append(definition)
    # Registered without requiresCompatibilities (a moto bug) and run with launchType FARGATE.
    ecs.register_task_definition(family=family, containerDefinitions=definitions)


@pytest.fixture(scope="session")
def moto_ecs():
    moto = MotoEcs().start()
    ecs = moto.client("ecs")
    for cluster in (CONTROL, AGENT):
        ecs.create_cluster(clusterName=cluster)
    register(ecs, "control-step", "control")
    register(ecs, "agent-step", "agent")
    register(ecs, "no-logs", None)
    register(ecs, "two-containers", "control", containers=("step", "sidecar"))
    moto.client("logs").create_log_group(logGroupName=LOG_GROUP)
    yield moto
    moto.stop()


@pytest.fixture(scope="session")
def ecs_agent(moto_ecs):
    agent = EcsAgent(moto_ecs, AGENT).start()
    yield agent
    agent.stop()


@pytest.fixture(autouse=True)
def aws_connection(moto_ecs, monkeypatch):
    """The runner's own AWS credentials come from an Airflow connection, as in a deployment."""
    uri = (
        f"aws://testing:testing@/?region_name={moto_ecs.region}"
        f"&endpoint_url={moto_ecs.endpoint_url.replace(':', '%3A').replace('/', '%2F')}"
    )
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", uri)


def make_runner(**options) -> EcsRunner:
    options = {
        "cluster": CONTROL,
        "task_definition": "control-step",
        "launch_type": "FARGATE",
        "poll_interval": 0.05,
        "aws_conn_id": CONN_ID,
        **options,
    }
    return EcsRunner(**options)


def make_request(step_key: str = "count_letters", try_number: int = 1) -> StepRequest:
    run_id = str(uuid.uuid4())
    return StepRequest(
        code_location=CodeLocation(python_file="/opt/jobs/demo.py"),
        job_name="demo_pipeline",
        step_key=step_key,
        run_id=run_id,
        storage=StorageSpec("s3", {"bucket": "steps"}),
        attempt=try_number,
        task=TaskRef("demo", step_key, f"manual__{run_id}", -1, try_number),
    )


class Running:
    """A runner's run() in a thread, as Airflow's task process runs it."""

    def __init__(
        self,
        runner: EcsRunner,
        request: StepRequest,
        secret_env=None,
        level=logging.INFO,
        job_env=None,
    ) -> None:
        self.runner, self.request = runner, request
        self.results: list = []
        self.task_log = TaskLog(level=level).__enter__()  # the task log the runner writes
        self.thread = threading.Thread(
            target=lambda: self.results.append(
                runner.run(
                    request,
                    run_context_for(request, self.task_log.logger, secret_env or {}, job_env),
                )
            ),
            daemon=True,
        )
        self.thread.start()

    def task(self, moto: MotoEcs, cluster: str = CONTROL, count: int = 1) -> dict:
        """The ECS task the run started (waits for it)."""
        ecs = moto.client("ecs")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            arns = ecs.list_tasks(cluster=cluster, startedBy=started_by(self.request))["taskArns"]
            if len(arns) >= count and self.runner._task_arn:
                arn = self.runner._task_arn
                task = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
                # Not DescribeTasks' include=TAGS: moto toggles that for all concurrent calls.
                task["tags"] = ecs.list_tags_for_resource(resourceArn=arn)["tags"]
                return task
            time.sleep(0.05)
        raise AssertionError("the runner started no ECS task")

    def result(self, timeout: float = 30):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the runner did not return"
        self.task_log.__exit__()
        return self.results[0]


def write_log(moto: MotoEcs, task: dict, lines, prefix: str = "control") -> None:
    logs = moto.client("logs")
    stream = f"{prefix}/step/{task['taskArn'].rsplit('/', 1)[-1]}"
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=stream,
        logEvents=[{"timestamp": now, "message": line} for line in lines],
    )


def event(kind: str, **fields) -> str:
    return StepEvent(kind, step_key="count_letters", **fields).to_json()


def copied(task_log: TaskLog) -> list[str]:
    """The lines the runner copied from the task's log into the task log."""
    return [r.getMessage() for r in task_log.records if r.module == "step_log"]


# -- control plane -----------------------------------------------------------------------------


def test_run_overrides_command_and_env_and_copies_the_log_once_across_polls(moto_ecs):
    request = make_request()
    job_env = {"WAREHOUSE_PASSWORD": "wh-pass-8c1e4d0b7"}  # the DAG's ENVIRONMENT, rendered
    running = Running(
        make_runner(tags={"team": "data"}),
        request,
        {"AWS_SECRET_ACCESS_KEY": "s3"},
        job_env=job_env,
    )
    task = running.task(moto_ecs)

    assert task["startedBy"] == started_by(request)
    assert task["launchType"] == "FARGATE"
    (override,) = task["overrides"]["containerOverrides"]
    assert override["name"] == "step"
    assert override["command"] == ["dagster-airflow", "execute-step"]
    # Default storage_credentials='task_role': no credentials in the overrides; the request, the
    # job's variables and the names of those that hold secrets (the worker redacts them).
    assert override["environment"] == [
        {"name": SECRET_NAMES_ENV_VAR, "value": '["WAREHOUSE_PASSWORD"]'},
        {"name": REQUEST_ENV_VAR, "value": request.to_json()},
        {"name": "WAREHOUSE_PASSWORD", "value": "wh-pass-8c1e4d0b7"},
    ]
    tags = {t["key"]: t["value"] for t in task["tags"]}
    assert tags["team"] == "data"
    assert tags["dagster-airflow/step"] == "count_letters"
    assert tags["dagster-airflow/dag"] == "demo"

    # The task writes its log in three bursts; the runner polls in between.
    uri = "s3://steps/r/count_letters/result"
    bursts = [
        [event("STEP_START"), "plain line 1", "plain line 2"],
        [event("LOG", message="Letter counts: {'b': 2}"), "plain line 3"],
        [event("HANDLED_OUTPUT", output_name="result", uri=uri), event("STEP_SUCCESS")],
    ]
    for burst in bursts:
        write_log(moto_ecs, task, burst)
        time.sleep(0.3)
    moto_ecs.finish(CONTROL, task["taskArn"], exit_code=0)
    result = running.result()

    assert result.status == SUCCESS, result.error
    assert result.outputs == {"result": uri}
    assert copied(running.task_log) == [
        "Step 'count_letters' started.",
        "plain line 1",
        "plain line 2",
        "Letter counts: {'b': 2}",
        "plain line 3",
        f"Stored output 'result' at {uri}",
        "Step 'count_letters' succeeded.",
    ]
    assert "is RUNNING" in running.task_log.text and "is STOPPED" in running.task_log.text


def test_environment_mode_passes_storage_credentials_but_never_logs_them(moto_ecs, caplog):
    caplog.set_level(logging.DEBUG)
    request = make_request()
    running = Running(
        make_runner(storage_credentials="environment"),
        request,
        {"AWS_ACCESS_KEY_ID": "AKIDSTEP", "AWS_SECRET_ACCESS_KEY": "hunter2-secret"},
        level=logging.DEBUG,
    )
    task = running.task(moto_ecs)
    env = {e["name"]: e["value"] for e in task["overrides"]["containerOverrides"][0]["environment"]}
    assert env["AWS_SECRET_ACCESS_KEY"] == "hunter2-secret"
    assert env[REQUEST_ENV_VAR] == request.to_json()
    assert "hunter2" not in request.to_json()
    moto_ecs.finish(CONTROL, task["taskArn"], exit_code=1)
    running.result()
    assert running.task_log.records, "the runner wrote nothing to the task log"
    # Neither in the task log nor in any other logger of this process.
    assert "hunter2-secret" not in running.task_log.text
    assert "hunter2-secret" not in caplog.text


def test_a_running_task_of_the_same_try_is_followed_not_started_again(moto_ecs):
    request = make_request()
    ecs = moto_ecs.client("ecs")
    # A stopped task of this try is history; a running one is the step, started by an earlier
    # Airflow process of the same try that died.
    for _ in range(2):
        ecs.run_task(
            cluster=CONTROL,
            taskDefinition="control-step",
            launchType="FARGATE",
            startedBy=started_by(request),
        )
    old, earlier = ecs.list_tasks(cluster=CONTROL, startedBy=started_by(request))["taskArns"]
    moto_ecs.finish(CONTROL, old, exit_code=1)

    running = Running(make_runner(), request)
    task = running.task(moto_ecs, count=2)
    assert task["taskArn"] == earlier
    write_log(moto_ecs, task, [event("STEP_START"), event("STEP_SUCCESS")])
    moto_ecs.finish(CONTROL, earlier, exit_code=0)

    assert running.result().status == SUCCESS
    assert len(ecs.list_tasks(cluster=CONTROL, startedBy=started_by(request))["taskArns"]) == 2
    assert f"Following ECS task {earlier}" in running.task_log.text

    # The next try is another mark, so it starts a task of its own.
    retry = make_request(try_number=2)
    assert started_by(retry) != started_by(request)


def test_a_new_try_stops_the_task_an_earlier_try_left_running(moto_ecs):
    # Try 1's task runs on (its task was cleared while no triggerer held its trigger); a task of
    # another map index runs too. Try 2 stops the first only, then starts its own.
    request = make_request()
    sibling = attrs.evolve(request, task=attrs.evolve(request.task, map_index=3))
    ecs = moto_ecs.client("ecs")
    for started in (request, sibling):
        ecs.run_task(
            cluster=CONTROL,
            taskDefinition="control-step",
            launchType="FARGATE",
            startedBy=started_by(started),
        )
    (left,) = ecs.list_tasks(cluster=CONTROL, startedBy=started_by(request))["taskArns"]
    (other,) = ecs.list_tasks(cluster=CONTROL, startedBy=started_by(sibling))["taskArns"]
    retry = attrs.evolve(request, attempt=2, task=attrs.evolve(request.task, try_number=2))

    running = Running(make_runner(), retry)
    task = running.task(moto_ecs)
    write_log(moto_ecs, task, [event("STEP_START"), event("STEP_SUCCESS")])
    moto_ecs.finish(CONTROL, task["taskArn"], exit_code=0)

    assert running.result().status == SUCCESS
    stopped, untouched = ecs.describe_tasks(cluster=CONTROL, tasks=[left, other])["tasks"]
    assert stopped["desiredStatus"] == "STOPPED"
    assert stopped["stoppedReason"] == f"dagster-airflow: {SUPERSEDED}"
    assert untouched["desiredStatus"] == "RUNNING"
    assert (
        f"Stopping ECS task {left.rsplit('/', 1)[-1]}, which an earlier try of this task "
        "started and which still runs"
    ) in running.task_log.text


@pytest.mark.parametrize(
    ("stopped", "expected"),
    [
        (
            {"exit_code": 137, "container_reason": "OutOfMemoryError: Container killed"},
            "ran out of memory (OutOfMemoryError: Container killed); give the task definition",
        ),
        (
            {
                "exit_code": None,
                "stop_code": "TaskFailedToStart",
                "reason": "CannotPullContainerError: pull image manifest has been retried",
            },
            "could not pull its image (CannotPullContainerError: pull image manifest",
        ),
        (
            {
                "exit_code": None,
                "stop_code": "TaskFailedToStart",
                "reason": "ResourceInitializationError: unable to retrieve secret",
            },
            "failed to start: ResourceInitializationError: unable to retrieve secret.",
        ),
        (
            {"exit_code": None, "stop_code": "UserInitiated", "reason": "Task stopped by user"},
            "was stopped before the step finished: Task stopped by user.",
        ),
        (
            {"exit_code": 3},
            "exited with code 3 before the step finished (Essential container in task exited).",
        ),
        ({"exit_code": 0}, "exited with code 0, but its log /ecs/dagster-steps/control/step/"),
    ],
    ids=["out-of-memory", "image-pull", "failed-to-start", "stopped-by-user", "exit-3", "no-log"],
)
def test_a_task_that_stops_without_a_step_result_says_why(moto_ecs, stopped, expected):
    running = Running(make_runner(), make_request())
    task = running.task(moto_ecs)
    if stopped["exit_code"] not in (0, None):
        write_log(moto_ecs, task, [event("STEP_START"), "Traceback: the worker died here"])
    moto_ecs.finish(CONTROL, task["taskArn"], **stopped)
    result = running.result()

    assert result.status == FAILURE
    assert result.exit_code == stopped["exit_code"]
    assert result.error.class_name == "EcsTaskStopped"
    assert expected in result.error.message
    assert task["taskArn"] in result.error.message
    if stopped["exit_code"] not in (0, None):
        assert "the worker died here" in result.error.summary()


def test_a_step_failure_surfaces_as_with_the_other_runners(moto_ecs):
    running = Running(make_runner(), make_request())
    task = running.task(moto_ecs)
    error = StepError("ValueError", "the answer is not 41", "  File jobs.py, line 3")
    write_log(moto_ecs, task, [event("STEP_START"), event("STEP_FAILURE", error=error)])
    moto_ecs.finish(CONTROL, task["taskArn"], exit_code=1)
    result = running.result()

    assert result.status == FAILURE
    assert result.error == error
    assert result.exit_code == 1


def test_kill_stops_the_task_with_a_reason(moto_ecs):
    runner = make_runner()
    running = Running(runner, make_request())
    task = running.task(moto_ecs)
    runner.kill()
    result = running.result()

    stopped = moto_ecs.task(CONTROL, task["taskArn"])
    assert stopped.desired_status == "STOPPED"
    assert stopped.stopped_reason.startswith("dagster-airflow: Airflow stopped the task")
    assert result.status == FAILURE
    assert "was stopped before the step finished: dagster-airflow: Airflow" in result.error.message


def test_a_kill_just_after_run_task_returned_stops_the_task(moto_ecs):
    """The kill that came after RunTask answered but before the runner noted the task's ARN
    (Airflow's on_kill from its signal handler, between the two) still stops that task."""
    runner = make_runner()
    request = make_request()
    prepare = runner.prepare

    def prepare_then_kill_after_run_task(request, context):
        prepare(request, context)
        run_task = runner._ecs.run_task

        def run_task_then_kill(**kwargs):
            response = run_task(**kwargs)
            runner.kill()
            return response

        runner._ecs.run_task = run_task_then_kill

    runner.prepare = prepare_then_kill_after_run_task
    with TaskLog() as task_log:
        result = runner.run(request, run_context_for(request, task_log.logger))

    ecs = moto_ecs.client("ecs")
    (arn,) = ecs.list_tasks(cluster=CONTROL, startedBy=started_by(request))["taskArns"]
    stopped = moto_ecs.task(CONTROL, arn)
    assert stopped.desired_status == "STOPPED"
    assert stopped.stopped_reason.startswith("dagster-airflow: Airflow stopped the task")
    assert result.status == FAILURE
    assert result.error.kind == STOPPED, result.error
    assert "was stopped before the step finished" in result.error.message


def test_timeout_stops_the_task(moto_ecs):
    running = Running(make_runner(timeout=0.5), make_request())
    task = running.task(moto_ecs)
    result = running.result()

    assert moto_ecs.task(CONTROL, task["taskArn"]).desired_status == "STOPPED"
    assert result.error.class_name == "StepTimeout"
    assert result.error.kind == TIMEOUT
    assert "longer than the ecs runner's timeout of 0.5s" in result.error.message


def test_kill_before_run_does_nothing():
    make_runner().kill()


def test_a_task_stuck_pending_is_stopped_after_pending_timeout(moto_ecs):
    running = Running(make_runner(pending_timeout=0.3), make_request())
    task = running.task(moto_ecs)
    moto_ecs.task(CONTROL, task["taskArn"]).last_status = "PENDING"  # no capacity, say
    result = running.result()

    assert moto_ecs.task(CONTROL, task["taskArn"]).desired_status == "STOPPED"
    assert "the task was still PENDING after 0.3 s (pending_timeout)" in result.error.message


def test_started_by_is_deterministic_short_and_per_try():
    request = make_request()
    mark = started_by(request)
    assert mark == started_by(request) and len(mark) <= 36
    assert mark.startswith("dagster-airflow-")
    mapped = StepRequest(
        code_location=request.code_location,
        job_name=request.job_name,
        step_key=request.step_key,
        run_id=request.run_id,
        task=TaskRef("demo", request.step_key, request.task.run_id, 3, 1),
    )
    assert started_by(mapped) != mark


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"launch_type": "LAMBDA"},
            "'launch_type' must be one of FARGATE, EC2, EXTERNAL, got 'LAMBDA'",
        ),
        ({"launch_type": "fargate"}, "got 'fargate'; write launch_type=FARGATE."),
        (
            {"capacity_provider_strategy": [{"capacityProvider": "FARGATE_SPOT"}]},
            "got both launch_type 'FARGATE' and capacity_provider_strategy",
        ),
        (
            {"storage_credentials": "yes"},
            "'storage_credentials' must be one of task_role, environment, got 'yes'",
        ),
        ({"poll_interval": 0}, "'poll_interval' must be a number of seconds above 0, got 0"),
        ({"capacity_provider_strategy": ["FARGATE"]}, "item 'FARGATE' is not a mapping"),
        ({"network_configuration": {"security_groups": ["sg-1"]}}, "needs a list of 'subnets'"),
    ],
)
def test_wrong_options_are_one_clear_sentence(options, message):
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        make_runner(**options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"task_definition": "no-logs"},
            "container 'step' of ECS task definition 'no-logs' has no awslogs log group",
        ),
        (
            {"task_definition": "two-containers"},
            "has containers ['step', 'sidecar']; set the ecs runner's container_name",
        ),
        (
            {"task_definition": "control-step", "container_name": "main"},
            "has no container 'main'; its containers are ['step']",
        ),
    ],
)
def test_a_task_definition_that_does_not_fit_is_a_clear_error(moto_ecs, options, message):
    with pytest.raises(ConfigurationError) as caught:
        run_step(make_runner(**options), make_request(), logging.getLogger("ecs-test"))
    assert message in str(caught.value)


def test_an_unknown_task_definition_is_a_clear_error(moto_ecs):
    with pytest.raises(Exception, match="cannot read the ECS task definition 'nope'"):
        run_step(make_runner(task_definition="nope"), make_request(), logging.getLogger("t"))


def test_awslogs_options_override_the_task_definition(moto_ecs):
    runner = make_runner(
        task_definition="no-logs", awslogs_group=LOG_GROUP, awslogs_stream_prefix="control"
    )
    running = Running(runner, make_request())
    task = running.task(moto_ecs)
    write_log(moto_ecs, task, [event("STEP_START"), event("STEP_SUCCESS")])
    moto_ecs.finish(CONTROL, task["taskArn"])
    assert running.result().status == SUCCESS


def test_overrides_over_the_ecs_limit_are_a_clear_error(moto_ecs):
    request = make_request()
    big = StepRequest(
        code_location=request.code_location,
        job_name=request.job_name,
        step_key=request.step_key,
        run_id=request.run_id,
        run_config={"ops": {"x": {"config": {"blob": "x" * 9000}}}},
        task=request.task,
    )
    with pytest.raises(ConfigurationError, match="over ECS's limit of 8192"):
        make_runner().run(big, run_context_for(big, logging.getLogger("t")))


def test_network_configuration_short_form():
    assert _aws_network_configuration(
        {"subnets": ["subnet-1"], "security_groups": ["sg-1"], "assign_public_ip": False}
    ) == {
        "awsvpcConfiguration": {
            "subnets": ["subnet-1"],
            "securityGroups": ["sg-1"],
            "assignPublicIp": "DISABLED",
        }
    }
    full = {"awsvpcConfiguration": {"subnets": ["subnet-2"]}}
    assert _aws_network_configuration(full) == full


def test_the_runner_is_a_registered_plugin_with_scaffold_defaults():
    from dagster_airflow.plugins.manager import get_plugins

    backend = get_plugins().runner("ecs")
    assert backend.cls is EcsRunner
    options = EcsRunner.scaffold_options({"cluster": "c", "task_definition": "t"})
    assert options["storage_credentials"] == "task_role"
    assert json.dumps(options)


def test_an_api_error_while_following_is_one_sentence(moto_ecs):
    # A cluster that does not exist: ListTasks, the first call on it, is refused.
    runner = make_runner(cluster="no-such-cluster")
    with pytest.raises(Exception) as caught:
        run_step(runner, make_request(), logging.getLogger("ecs-test"))
    message = str(caught.value)
    assert message.startswith("the ecs runner's ListTasks call on cluster 'no-such-cluster'")
    assert "ClusterNotFoundException" in message


# -- docs/ecs.md -------------------------------------------------------------------------------

DOCS = (ROOT / "docs" / "ecs.md").read_text()


def docs_blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOCS, re.S)


def test_docs_scaffold_command_works(tmp_path):
    (command,) = [line[2:] for line in docs_blocks("console")[0].splitlines()]
    done = run_cli(
        *shlex.split(command)[1:], env={"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path)}
    )
    assert done.returncode == 0, done.stderr
    assert '"network_configuration": {' in done.stdout
    assert '"storage_credentials": "task_role"' in done.stdout


def test_docs_task_definition_registers_and_fits_the_runner(moto_ecs):
    definition = json.loads(docs_blocks("json")[0])
    definition.pop("requiresCompatibilities")  # moto refuses FARGATE without a VPC's DNS names
    ecs = moto_ecs.client("ecs")
    registered = ecs.register_task_definition(**definition)["taskDefinition"]
    runner = EcsRunner(cluster="c", task_definition=registered["family"])
    container = runner._container(registered)
    assert runner._log_configuration(container) == ("/ecs/dagster-steps", "dagster", "eu-west-1")


def test_docs_policy_allows_every_call_the_runner_makes():
    policy = json.loads(docs_blocks("json")[1])
    allowed = {action for s in policy["Statement"] for action in s["Action"]}
    source = inspect.getsource(EcsRunner) + inspect.getsource(CloudWatchLogReader)
    calls = set(re.findall(r"(?:ecs|self\._ecs|self\.client)\.([a-z_]+)\(", source))
    services = {"get_log_events": "logs"}
    expected = {
        f"{services.get(c, 'ecs')}:{c.title().replace('_', '')}" for c in calls - {"exceptions"}
    }
    assert expected <= allowed, expected - allowed
    assert {"ecs:TagResource", "iam:PassRole"} <= allowed


def test_docs_name_every_option():
    table = DOCS.split("## Options", 1)[1]
    for name in option_names(EcsRunner.options_class):
        if name != "self":
            assert f"| `{name}` |" in table, f"docs/ecs.md does not describe option {name!r}"


# -- the agent plays ECS: real workers -----------------------------------------------------------


class TestEcsRunnerContract(RunnerContract):
    step_timeout = 100.0
    kills_before_start = reattaches = times_out = defers = stops_earlier_tries = True
    start_method = "start"

    @pytest.fixture
    def runner_factory(self, ecs_agent):
        return lambda: make_runner(cluster=AGENT, task_definition="agent-step", poll_interval=0.2)

    @pytest.fixture
    def storage_spec(self, tmp_path):
        # The agent runs tasks on this machine, so a local folder is a storage they share.
        return StorageSpec("filesystem", {"base_dir": str(tmp_path)})


@pytest.mark.airflow
def test_demo_runs_end_to_end_with_every_step_an_ecs_task_on_s3(
    airflow_home, moto_ecs, ecs_agent, monkeypatch
):
    bucket, prefix, dag_id = "ecs-e2e", "runs", "e2e_ecs"
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    s3 = moto_ecs.client("s3")
    s3.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": moto_ecs.region}
    )
    # One connection for the runner's ECS and Logs calls and the storage: moto serves both.
    extra = urllib.parse.urlencode(
        {"endpoint_url": moto_ecs.endpoint_url, "region_name": moto_ecs.region}
    )
    monkeypatch.setitem(
        airflow_home.env,
        "AIRFLOW_CONN_AWS_DEFAULT",
        f"aws://AKIAECSE2E:{urllib.parse.quote(secret)}@/?{extra}",
    )
    runner_options = {
        "cluster": AGENT,
        "task_definition": "agent-step",
        "launch_type": "FARGATE",
        "poll_interval": 0.5,
        # The agent is no ECS with task roles: the storage's credentials go in the overrides.
        "storage_credentials": "environment",
    }
    args = ["demo_pipeline", "-f", str(EXAMPLES / "demo.py"), "-e", str(EXAMPLES / "demo.yml")]
    args += ["--dag-id", dag_id, "--runner", "ecs", "--storage", "s3"]
    for key, value in runner_options.items():
        args += ["--runner-option", f"{key}={value}"]
    args += ["--storage-option", f"bucket={bucket}", "--storage-option", f"prefix={prefix}"]
    text = scaffold(*args)
    assert '"name": "ecs"' in text and secret not in text
    airflow_home.install(text, f"{dag_id}.py")

    result = airflow_home.dags_test(dag_id)

    assert result.succeeded, result.output[-3000:]
    assert result.states == dict.fromkeys(STEPS, "success")
    root = f"{prefix}/{dagster_run_id(dag_id, result.run_id)}"
    assert result.xcoms["summarize"] == {"result": f"s3://{bucket}/{root}/summarize/result"}
    body = s3.get_object(Bucket=bucket, Key=f"{root}/summarize/result")["Body"].read()
    assert pickle.loads(body) == expected_summary()

    # Every step was an ECS task of its own, and its CloudWatch log is in the Airflow task log.
    ecs = moto_ecs.client("ecs")
    arns = ecs.list_tasks(cluster=AGENT)["taskArns"]
    tasks = ecs.describe_tasks(cluster=AGENT, tasks=arns, include=["TAGS"])["tasks"]
    ours = [t for t in tasks if {"key": "dagster-airflow/dag", "value": dag_id} in t["tags"]]
    assert sorted(t["overrides"]["containerOverrides"][0]["command"][1] for t in ours) == [
        "execute-step"
    ] * len(STEPS)
    assert {t["lastStatus"] for t in ours} == {"STOPPED"} and len(ours) == len(STEPS)
    log = result.task_log("summarize")
    assert "Started ECS task arn:aws:ecs:" in log
    assert "Letter counts: {'b': 2, 'a': 2, 'r': 2}" in log
    assert f"Loaded input 'counts' from s3://{bucket}/{root}/count_letters/result" in log
    assert secret not in result.output, "the secret access key is in a task log"


TIMEOUT_DAG = """
import datetime

from airflow.sdk import DAG

from dagster_airflow import DagsterOperator

with DAG(
    dag_id="ecs_timeout",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    catchup=False,
):
    DagsterOperator(
        task_id="sleepy",
        step_key="sleepy",
        job_name="trouble",
        code_location={"python_file": JOB_FILE},
        run_config={"ops": {"sleepy": {"config": {"pid_file": PID_FILE, "seconds": 600}}}},
        runner=RUNNER,
        storage={"name": "filesystem", "base_dir": BASE_DIR},
        retries=0,
        execution_timeout=datetime.timedelta(seconds=20),
    )
"""


@pytest.mark.airflow
def test_an_airflow_execution_timeout_stops_the_ecs_task(
    airflow_home, moto_ecs, ecs_agent, monkeypatch, tmp_path
):
    extra = urllib.parse.urlencode(
        {"endpoint_url": moto_ecs.endpoint_url, "region_name": moto_ecs.region}
    )
    monkeypatch.setitem(
        airflow_home.env, "AIRFLOW_CONN_AWS_DEFAULT", f"aws://testing:testing@/?{extra}"
    )
    runner = {
        "name": "ecs",
        "cluster": AGENT,
        "task_definition": "agent-step",
        "launch_type": "FARGATE",
        "poll_interval": 0.5,
    }
    text = TIMEOUT_DAG
    for name, value in {
        "JOB_FILE": str(ROOT / "tests" / "jobs" / "trouble.py"),
        "PID_FILE": str(tmp_path / "sleepy.pid"),
        "BASE_DIR": str(tmp_path / "storage"),
        "RUNNER": runner,
    }.items():
        text = text.replace(name, repr(value))
    airflow_home.install(text, "ecs_timeout.py")

    started = time.monotonic()
    result = airflow_home.dags_test("ecs_timeout")

    assert time.monotonic() - started < 240
    assert result.states == {"sleepy": "failed"}, result.output[-3000:]
    ecs = moto_ecs.client("ecs")
    tasks = ecs.describe_tasks(
        cluster=AGENT, tasks=ecs.list_tasks(cluster=AGENT)["taskArns"], include=["TAGS"]
    )["tasks"]
    (task,) = [
        t for t in tasks if {"key": "dagster-airflow/dag", "value": "ecs_timeout"} in t["tags"]
    ]
    assert task["stoppedReason"] == (
        "dagster-airflow: Airflow stopped the task (on_kill or execution_timeout)"
    )
    # The agent stopped the "container" as ECS would: the step's process is gone.
    deadline = time.monotonic() + 30
    while ecs_agent._processes[task["taskArn"]].poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ecs_agent._processes[task["taskArn"]].poll() is not None


def test_a_mapped_steps_tags_are_valid_ecs_tag_values():
    tags = make_runner()._tags(make_request("compute_piece[piece_3]"))
    assert tags["dagster-airflow/step"] == "compute_piece_piece_3_"
    assert all(re.fullmatch(r"[\w\s.:/=+\-@]*", value) for value in tags.values())
