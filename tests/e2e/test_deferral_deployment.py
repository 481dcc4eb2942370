"""Deferral on a real deployment (scheduler, triggerer, LocalExecutor): a docker step (podman)
is started by a worker, followed by the triggerer while it runs, and finished by a worker; a
triggerer restart follows the same container, and a task marked failed stops it. A graphql step
defers while its run goes on in a real dagster-webserver. An ECS step (moto server and an ECS
agent inside the deployment's network namespace, S3 storage on moto) defers the same way, its
AWS credentials and endpoint reaching the triggerer through the task's Airflow connection."""

from __future__ import annotations

import json
import pickle
import uuid

import pytest

from dagster_airflow.model import dagster_run_id
from harness.airflow_deployment import AirflowDeployment
from harness.dagster_webserver import DagsterWebserver
from harness.ecs import EcsAgent, MotoEcs
from tests.conftest import EXAMPLES, JOBS, ROOT, scaffold
from tests.runners.test_docker import (  # noqa: F401 - the podman engine and image fixtures
    image,
    podman,
    private_registry,
    project_mounts,
    refusing_registry,
)

pytestmark = pytest.mark.airflow

DAG_ID = "deferred_containers"
DEPLOYMENT = JOBS / "deployment.py"
RUN_LABEL = "dagster-airflow.dagster_run_id"


@pytest.fixture(scope="module")
def dag(airflow_deployment: AirflowDeployment, podman, image, tmp_path_factory) -> str:  # noqa: F811
    """The containers job on the docker runner, its containers kept (auto_remove never) so
    that a test can count them."""
    storage_dir = tmp_path_factory.mktemp("deferred-storage")
    config = storage_dir / "containers.yml"
    config.write_text(json.dumps({"ops": {"sleepy": {"config": {"seconds": 40}}}}))
    mounts = [*project_mounts(), f"{storage_dir}:{storage_dir}"]
    text = scaffold(
        *("containers", "-f", str(JOBS / "containers.py"), "-e", str(config)),
        *("--dag-id", DAG_ID, "--runner", "docker", "--runner-option", f"image={image}"),
        *("--runner-option", f"docker_url={podman.base_url}"),
        *("--runner-option", f"mounts={json.dumps(mounts)}"),
        *("--runner-option", "auto_remove=never", "--runner-option", "stop_timeout=3"),
        *("--runner-option", "environment={PUBLIC_SETTING: visible-42}"),
        *("--storage", "filesystem", "--storage-option", f"base_dir={storage_dir}"),
    )
    airflow_deployment.install(text, f"{DAG_ID}.py")
    airflow_deployment.wait_for_dag(DAG_ID)
    yield DAG_ID
    for container in podman.containers(label=RUN_LABEL):
        podman.podman("rm", "--force", container["Id"])


def containers_of(podman, run_id: str) -> list[dict]:  # noqa: F811
    return podman.containers(label=f"{RUN_LABEL}={dagster_run_id(DAG_ID, run_id)}")


def wait_deferred_and_running(airflow: AirflowDeployment, podman, run_id: str) -> dict:  # noqa: F811
    """Until sleepy's task is deferred and its container runs; that container."""
    found: list[dict] = []

    def deferred_and_running() -> bool:
        state = airflow.task_instances(DAG_ID, run_id)["sleepy"]["state"]
        running = [
            c
            for c in containers_of(podman, run_id)
            if c["Labels"].get("dagster-airflow.task_id") == "sleepy" and c["State"] == "running"
        ]
        found[:] = running
        return state == "deferred" and bool(running)

    airflow.wait_until(deferred_and_running, 180, "sleepy deferred with its container running")
    return found[0]


@pytest.fixture(scope="module")
def webserver_inside(airflow_deployment: AirflowDeployment, tmp_path_factory):
    """A Dagster deployment (dagster-webserver serving tests/jobs/deployment.py) on the
    deployment's own loopback, where its workers and triggerer reach it."""
    server = DagsterWebserver(
        tmp_path_factory.mktemp("deferred-dagster"), ["-f", str(DEPLOYMENT), "-d", str(ROOT)]
    )
    airflow_deployment.inside(server.start)
    yield server
    server.stop()


def test_a_graphql_step_defers_while_its_dagster_run_goes_on(
    airflow_deployment, webserver_inside, tmp_path
):
    dag_id, run_id = "deferred_graphql", "deferred_graphql_run"
    storage_dir = tmp_path / "storage"
    text = scaffold(
        *("demo_pipeline", "-f", str(DEPLOYMENT), "-e", str(EXAMPLES / "demo.yml")),
        *("--dag-id", dag_id, "--runner", "graphql"),
        *("--runner-option", f"url={webserver_inside.url}", "--runner-option", "poll_interval=1"),
        *("--storage", "filesystem", "--storage-option", f"base_dir={storage_dir}"),
    )
    airflow_deployment.install(text, f"{dag_id}.py")
    airflow_deployment.wait_for_dag(dag_id)
    airflow_deployment.trigger(dag_id, run_id)

    assert airflow_deployment.wait_for_run(dag_id, run_id) == "success"
    log = airflow_deployment.task_log_shown(dag_id, run_id, "summarize")
    assert "Deferring to the triggerer while the step's Dagster run runs" in log, log[-3000:]
    assert "Letter counts: {'b': 2, 'a': 2, 'r': 2}" in log  # from the triggerer
    assert "The step's Dagster run ended; reading its result" in log
    summary = storage_dir / dagster_run_id(dag_id, run_id) / "summarize" / "result"
    assert pickle.loads(summary.read_bytes()) == {"letters": {"b": 2, "a": 2, "r": 2}, "total": 6}
    xcom = airflow_deployment.rest(
        "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/summarize/xcomEntries"
    )[1]
    assert any(entry["key"] == "return_value" for entry in xcom["xcom_entries"]), xcom


def followed(airflow: AirflowDeployment, run_id: str) -> None:
    """Until the triggerer follows sleepy's container: its output reaches the task's log."""
    airflow.wait_until(
        lambda: "sleeping" in airflow.task_log_shown(DAG_ID, run_id, "sleepy"),
        120,
        f"the trigger's first lines in the log of sleepy in {run_id}",
    )


def test_docker_steps_defer_survive_a_triggerer_restart_and_stop_when_marked_failed(
    airflow_deployment,
    podman,  # noqa: F811
    dag,
):
    # Two runs at once (their triggers live side by side): one the triggerer's restart must
    # not disturb, one a user marks failed while it runs.
    restarted, killed = "deferred_restart", "deferred_killed"
    airflow_deployment.trigger(dag, restarted, {"ops": {"sleepy": {"config": {"seconds": 90}}}})
    airflow_deployment.trigger(dag, killed, {"ops": {"sleepy": {"config": {"seconds": 600}}}})
    container = wait_deferred_and_running(airflow_deployment, podman, restarted)
    doomed = wait_deferred_and_running(airflow_deployment, podman, killed)
    followed(airflow_deployment, restarted)
    followed(airflow_deployment, killed)

    # Marked failed while deferred: the trigger's on_kill stops its container.
    airflow_deployment.set_task_state(dag, killed, "sleepy", "failed")

    def stopped() -> bool:
        (now,) = [c for c in containers_of(podman, killed) if c["Id"] == doomed["Id"]]
        return now["State"] in ("exited", "stopped")

    airflow_deployment.wait_until(stopped, 120, "the container of the task marked failed stopped")
    assert airflow_deployment.task_instances(dag, killed)["sleepy"]["state"] == "failed"

    # A deploy restarts the triggerer while the other step runs: the new one follows that
    # container.
    airflow_deployment.restart("triggerer")

    assert airflow_deployment.wait_for_run(dag, restarted) == "failed"  # boom fails on purpose
    states = {t: ti["state"] for t, ti in airflow_deployment.task_instances(dag, restarted).items()}
    assert states == {"show_environment": "success", "boom": "failed", "sleepy": "success"}
    # Never a second container for the try: the restarted trigger followed the first.
    sleepy = [
        c
        for c in containers_of(podman, restarted)
        if c["Labels"].get("dagster-airflow.task_id") == "sleepy"
    ]
    assert [c["Id"] for c in sleepy] == [container["Id"]]
    assert sleepy[0]["State"] in ("exited", "stopped")
    # The task log shows the worker's start, the triggerers' lines and the worker's end.
    log = airflow_deployment.task_log_shown(dag, restarted, "sleepy")
    assert "Deferring to the triggerer while the step's container runs" in log, log[-3000:]
    assert log.count("sleeping") == 2, log[-3000:]  # each triggerer read it from its start
    assert "The step's container ended; reading its result" in log
    # Output, events and errors of a deferred step reach their task as without deferral.
    shown = airflow_deployment.task_log_shown(dag, restarted, "show_environment")
    assert "PUBLIC_SETTING is visible-42" in shown
    boom = airflow_deployment.task_log_shown(dag, restarted, "boom")
    assert "ValueError: the container step failed on purpose" in boom, boom[-3000:]
    xcom = airflow_deployment.rest(
        "GET",
        f"/api/v2/dags/{dag}/dagRuns/{restarted}/taskInstances/show_environment/xcomEntries",
    )[1]
    assert any(entry["key"] == "return_value" for entry in xcom["xcom_entries"]), xcom


def test_a_deferred_step_no_triggerer_holds_stops_when_a_user_ends_it(
    airflow_deployment,
    podman,  # noqa: F811
    dag,
):
    # The triggerer is down (a deploy, a crash) while the worker starts the containers and
    # defers: no triggerer holds their triggers, so none calls on_kill when a user ends the
    # tasks, and Airflow deletes the triggers unrun. The api-server stops the containers: one
    # task marked failed, one DAG run marked failed (the UI's two buttons).
    task_marked, run_marked = "deferred_unheld_task", "deferred_unheld_run"
    sleep_long = {"ops": {"sleepy": {"config": {"seconds": 600}}}}
    with airflow_deployment.stopped("triggerer"):
        airflow_deployment.trigger(dag, task_marked, sleep_long)
        airflow_deployment.trigger(dag, run_marked, sleep_long)
        doomed = {
            task_marked: wait_deferred_and_running(airflow_deployment, podman, task_marked),
            run_marked: wait_deferred_and_running(airflow_deployment, podman, run_marked),
        }
        airflow_deployment.set_task_state(dag, task_marked, "sleepy", "failed")
        airflow_deployment.set_run_state(dag, run_marked, "failed")

        def stopped() -> bool:
            states = [
                c["State"]
                for run_id, container in doomed.items()
                for c in containers_of(podman, run_id)
                if c["Id"] == container["Id"]
            ]
            return all(state in ("exited", "stopped") for state in states)

        airflow_deployment.wait_until(stopped, 120, "the containers no triggerer followed stopped")
        for run_id in doomed:
            assert airflow_deployment.task_instances(dag, run_id)["sleepy"]["state"] == "failed"
        # The api-server's log says what it stopped (for the run marked failed, its other
        # deferred steps too).
        log = airflow_deployment.server_log("api-server")
        assert "The task was stopped by a user: stopping its container" in log, log[-3000:]
        for container in doomed.values():
            assert f"({container['Id'][:12]}): Airflow stopped the task" in log, log[-3000:]
    # The triggerer is back: the first run's other steps end; the tasks ended stay so, with no
    # second container.
    assert airflow_deployment.wait_for_run(dag, task_marked) == "failed"
    for run_id, container in doomed.items():
        assert airflow_deployment.task_instances(dag, run_id)["sleepy"]["state"] == "failed"
        sleepy = [
            c
            for c in containers_of(podman, run_id)
            if c["Labels"].get("dagster-airflow.task_id") == "sleepy"
        ]
        assert [c["Id"] for c in sleepy] == [container["Id"]]


ECS_DAG_ID, ECS_CLUSTER, ECS_CONN_ID = "deferred_ecs", "deferred", "aws_deferred_ecs"
BUCKET = "deferred-ecs"


def test_a_deferred_step_cleared_while_no_triggerer_holds_it_runs_once_again(
    airflow_deployment,
    podman,  # noqa: F811
    dag,
):
    # Airflow tells no listener of a clear: the cleared task's next try stops the container
    # its first try left running, before it starts its own.
    cleared = "deferred_unheld_cleared"
    with airflow_deployment.stopped("triggerer"):
        airflow_deployment.trigger(dag, cleared, {"ops": {"sleepy": {"config": {"seconds": 600}}}})
        first = wait_deferred_and_running(airflow_deployment, podman, cleared)
        airflow_deployment.clear(dag, cleared, ["sleepy"], downstream=False)

        def sleepy_by_try() -> dict[str, dict]:
            return {
                c["Labels"].get("dagster-airflow.try_number"): c
                for c in containers_of(podman, cleared)
                if c["Labels"].get("dagster-airflow.task_id") == "sleepy"
            }

        airflow_deployment.wait_until(
            lambda: sleepy_by_try().get("2", {}).get("State") == "running",
            180,
            "sleepy's second try running",
        )
        tries = sleepy_by_try()
        assert tries["1"]["Id"] == first["Id"]
        assert tries["1"]["State"] in ("exited", "stopped"), tries["1"]
        log = airflow_deployment.task_log_shown(dag, cleared, "sleepy", try_number=2)
        assert f"({first['Id'][:12]}), which an earlier try of this task started" in log, log
        # Ended by a user in turn (still no triggerer): the api-server stops the second.
        airflow_deployment.set_task_state(dag, cleared, "sleepy", "failed")
        airflow_deployment.wait_until(
            lambda: sleepy_by_try()["2"]["State"] in ("exited", "stopped"),
            120,
            "sleepy's second try stopped",
        )
        assert airflow_deployment.task_instances(dag, cleared)["sleepy"]["try_number"] == 2
    # The triggerer is back: the run's other steps end (boom fails on purpose).
    assert airflow_deployment.wait_for_run(dag, cleared) == "failed"


@pytest.fixture(scope="module")
def ecs_inside(airflow_deployment: AirflowDeployment):
    """moto server (ECS, CloudWatch Logs, S3) and an ECS agent on the deployment's own loopback,
    where its workers, its triggerer and the agent's "containers" reach them."""
    moto = airflow_deployment.inside(MotoEcs().start)
    agent = airflow_deployment.inside(EcsAgent(moto, ECS_CLUSTER, poll=0.2).start)

    def create() -> None:
        # moto's backends are this process's, shared with test_ecs.py's server: names of our own.
        ecs = moto.client("ecs")
        ecs.create_cluster(clusterName=ECS_CLUSTER)
        logs = {"awslogs-group": "/ecs/deferred-steps", "awslogs-stream-prefix": "deferred"}
        container = {"name": "step", "image": "example/dagster-step:1", "memory": 512}
        container["logConfiguration"] = {"logDriver": "awslogs", "options": logs}
        ecs.register_task_definition(family="deferred-step", containerDefinitions=[container])
        moto.client("s3").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": moto.region}
        )

    airflow_deployment.inside(create)
    yield moto
    agent.stop()
    moto.stop()


def ecs_tasks_of(
    airflow: AirflowDeployment, moto: MotoEcs, task_id: str, run_id: str | None = None
) -> list[dict]:
    """The ECS tasks the DAG's task started (in the DAG run ``run_id``, or in any), as ListTasks
    and DescribeTasks show them."""
    wanted = [{"key": "dagster-airflow/task", "value": task_id}]
    if run_id is not None:
        wanted.append({"key": "dagster-airflow/airflow_run_id", "value": run_id})

    def tasks() -> list[dict]:
        ecs = moto.client("ecs")
        arns = ecs.list_tasks(cluster=ECS_CLUSTER, desiredStatus="RUNNING")["taskArns"]
        arns += ecs.list_tasks(cluster=ECS_CLUSTER, desiredStatus="STOPPED")["taskArns"]
        if not arns:
            return []
        found = ecs.describe_tasks(cluster=ECS_CLUSTER, tasks=arns)["tasks"]
        # Each task's tags asked for on their own: moto's DescribeTasks include=["TAGS"] is a
        # switch of its server's, which the runners' own DescribeTasks (without it) flip meanwhile.
        return [
            t
            for t in found
            if all(
                tag in ecs.list_tags_for_resource(resourceArn=t["taskArn"])["tags"]
                for tag in wanted
            )
        ]

    return airflow.inside(tasks)


def test_an_ecs_step_defers_while_its_task_runs_and_a_restarted_triggerer_follows_it(
    airflow_deployment, ecs_inside, tmp_path
):
    run_id, secret = "deferred_ecs_run", f"s3cr3t-{uuid.uuid4().hex}"
    # One Airflow connection, made as a user makes it, for the runner's ECS and Logs calls (in
    # the worker and in the triggerer) and the storage: moto serves both.
    extra = {"endpoint_url": ecs_inside.endpoint_url, "region_name": ecs_inside.region}
    connection = {"connection_id": ECS_CONN_ID, "conn_type": "aws", "login": "AKIADEFERRED"}
    connection |= {"password": secret, "extra": json.dumps(extra)}
    status, answer = airflow_deployment.write("/api/v2/connections", connection)
    assert status == 201, answer
    config = tmp_path / "deferred.yml"
    config.write_text(json.dumps({"ops": {"slow_count": {"config": {"seconds": 40}}}}))
    runner = {"cluster": ECS_CLUSTER, "task_definition": "deferred-step"}
    runner |= {"launch_type": "FARGATE", "poll_interval": 1, "aws_conn_id": ECS_CONN_ID}
    # The agent is no ECS with task roles: the storage's credentials go in the overrides.
    runner |= {"storage_credentials": "environment"}
    args = ["slow_then_report", "-f", str(JOBS / "deferred.py"), "-e", str(config)]
    args += ["--dag-id", ECS_DAG_ID, "--runner", "ecs", "--storage", "s3"]
    for key, value in runner.items():
        args += ["--runner-option", f"{key}={value}"]
    for key, value in {"bucket": BUCKET, "prefix": "runs", "aws_conn_id": ECS_CONN_ID}.items():
        args += ["--storage-option", f"{key}={value}"]
    airflow_deployment.install(scaffold(*args), f"{ECS_DAG_ID}.py")
    airflow_deployment.wait_for_dag(ECS_DAG_ID)
    # Two runs at once: one the triggerer's restart must not disturb, one a user marks failed.
    killed = "deferred_ecs_killed"
    airflow_deployment.trigger(ECS_DAG_ID, run_id)
    airflow_deployment.trigger(
        ECS_DAG_ID, killed, {"ops": {"slow_count": {"config": {"seconds": 600}}}}
    )

    # Deferred while its ECS task runs, in no worker's slot (the pool counts it as deferred).
    def deferred_and_running(run: str) -> bool:
        state = airflow_deployment.task_instances(ECS_DAG_ID, run)["slow_count"]["state"]
        running = [
            t
            for t in ecs_tasks_of(airflow_deployment, ecs_inside, "slow_count", run)
            if t["lastStatus"] == "RUNNING"
        ]
        return state == "deferred" and bool(running)

    for run in (run_id, killed):
        airflow_deployment.wait_until(
            lambda run=run: deferred_and_running(run), 120, f"slow_count of {run} deferred, running"
        )
    pool = airflow_deployment.rest("GET", "/api/v2/pools/default_pool")[1]
    assert (pool["deferred_slots"], pool["running_slots"]) == (2, 0), pool

    # The triggerer copies the ECS task's CloudWatch log into the task's log while it runs.
    for run in (run_id, killed):
        airflow_deployment.wait_until(
            lambda run=run: (
                "counting slowly"
                in airflow_deployment.task_log_shown(ECS_DAG_ID, run, "slow_count")
            ),
            60,
            f"the ECS task's first lines in the log of slow_count in {run}",
        )
    # A deploy restarts the triggerer while the step runs: the new one follows the same task.
    airflow_deployment.restart("triggerer")

    # Marked failed while deferred, once the new triggerer follows it (it reads the log from
    # its start again): that triggerer's trigger stops its ECS task (on_kill, StopTask).
    airflow_deployment.wait_until(
        lambda: (
            airflow_deployment.task_log_shown(ECS_DAG_ID, killed, "slow_count").count(
                "counting slowly"
            )
            == 2
        ),
        120,
        f"the restarted triggerer following slow_count of {killed}",
    )
    airflow_deployment.set_task_state(ECS_DAG_ID, killed, "slow_count", "failed")

    def stopped() -> bool:
        # Its process ended: the agent stops the container only then.
        (doomed,) = ecs_tasks_of(airflow_deployment, ecs_inside, "slow_count", killed)
        return doomed["containers"][0]["lastStatus"] == "STOPPED"

    airflow_deployment.wait_until(stopped, 120, "the ECS task of the task marked failed stopped")
    (doomed,) = ecs_tasks_of(airflow_deployment, ecs_inside, "slow_count", killed)
    assert doomed["lastStatus"] == "STOPPED", doomed
    assert doomed["stoppedReason"].startswith("dagster-airflow: "), doomed  # our StopTask
    assert airflow_deployment.task_instances(ECS_DAG_ID, killed)["slow_count"]["state"] == "failed"

    assert airflow_deployment.wait_for_run(ECS_DAG_ID, run_id, timeout=180) == "success"
    (task,) = ecs_tasks_of(airflow_deployment, ecs_inside, "slow_count", run_id)  # never two
    assert task["lastStatus"] == "STOPPED" and task["containers"][0]["exitCode"] == 0
    log = airflow_deployment.task_log_shown(ECS_DAG_ID, run_id, "slow_count")
    assert "Deferring to the triggerer while the step's task runs" in log, log[-3000:]
    assert log.count("counting slowly") == 2, log[-3000:]  # each triggerer read it from its start
    assert "counted" in log and "The step's task ended; reading its result" in log
    # Its output reached the downstream step, through S3 on moto.
    shown = airflow_deployment.task_log_shown(ECS_DAG_ID, run_id, "report")
    assert "The count is 42" in shown, shown[-3000:]
    key = f"runs/{dagster_run_id(ECS_DAG_ID, run_id)}/report/result"
    body = airflow_deployment.inside(
        lambda: ecs_inside.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    )
    assert pickle.loads(body) == "counted 42"
    assert secret not in log + shown, "the connection's secret is in a task log"

    # With the triggerer down, a user marks a deferred step failed: the api-server stops its
    # ECS task, with the credentials of the task's Airflow connection, as the trigger would.
    unheld = "deferred_ecs_unheld"
    with airflow_deployment.stopped("triggerer"):
        airflow_deployment.trigger(
            ECS_DAG_ID, unheld, {"ops": {"slow_count": {"config": {"seconds": 600}}}}
        )
        airflow_deployment.wait_until(
            lambda: deferred_and_running(unheld), 120, f"slow_count of {unheld} deferred, running"
        )
        airflow_deployment.set_task_state(ECS_DAG_ID, unheld, "slow_count", "failed")

        def unheld_stopped() -> bool:
            (doomed,) = ecs_tasks_of(airflow_deployment, ecs_inside, "slow_count", unheld)
            return doomed["lastStatus"] == "STOPPED"

        airflow_deployment.wait_until(unheld_stopped, 120, "the ECS task no triggerer followed")
    (doomed,) = ecs_tasks_of(airflow_deployment, ecs_inside, "slow_count", unheld)
    assert doomed["stoppedReason"].startswith("dagster-airflow: "), doomed  # our StopTask
    assert secret not in airflow_deployment.server_log("api-server")
