"""Deferral on a real deployment (scheduler, triggerer, LocalExecutor): a docker step (podman)
is started by a worker, followed by the triggerer while it runs, and finished by a worker; a
triggerer restart follows the same container, and a task marked failed stops it. A graphql step
defers while its run goes on in a real dagster-webserver."""

from __future__ import annotations

import json
import pickle

import pytest

from dagster_airflow.model import dagster_run_id
from harness.airflow_deployment import AirflowDeployment
from harness.dagster_webserver import DagsterWebserver
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
