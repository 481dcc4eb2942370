"""A real deployment with the CeleryExecutor: Redis, two Celery workers on two queues, outputs
on S3 (a moto server inside the deployment's network namespace). One DAG's tasks are routed to
both queues; each worker runs its share, each step forked by the one step server of the
machine."""

from __future__ import annotations

import pickle
import urllib.parse

import boto3
import pytest

from dagster_airflow.model import dagster_run_id
from dagster_airflow.step_server.protocol import running_servers
from harness import servers
from harness.airflow_deployment import AirflowDeployment
from tests.conftest import JOBS, run_cli, scaffold
from tests.e2e.test_e2e_subprocess import dagster_in_process

pytestmark = pytest.mark.airflow

BUCKET = "celery-outputs"
# Which queue each step's task goes to: DEFAULT_ARGS sends all to east, two go west.
QUEUES = {"source": "east", "square": "east", "double": "west", "total": "west"}


@pytest.fixture(scope="module")
def celery(tmp_path_factory):
    """A CeleryExecutor deployment whose AWS connection points at a moto server inside it."""
    path = tmp_path_factory.mktemp("celery")
    moto = servers.moto(log_path=path / "moto.log")
    extra = urllib.parse.urlencode({"endpoint_url": moto.url, "region_name": "us-east-1"})
    env = {"AIRFLOW_CONN_AWS_DEFAULT": f"aws://testing:testing@/?{extra}"}
    deployment = AirflowDeployment(
        path / "airflow",
        port=servers.free_port(),
        executor="CeleryExecutor",
        queues=("east", "west"),
        env=env,
    )
    with deployment:
        deployment.start_inside(moto)
        s3 = boto3.client(
            "s3",
            endpoint_url=moto.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        deployment.inside(lambda: s3.create_bucket(Bucket=BUCKET))
        yield deployment, s3


def test_tasks_routed_to_two_queues_run_on_their_workers_with_one_step_server(celery):
    from tests.jobs.deployed import routed

    deployment, s3 = celery
    text = scaffold(
        "routed",
        "-f",
        str(JOBS / "deployed.py"),
        "--storage",
        "s3",
        "--storage-option",
        f"bucket={BUCKET}",
        "--queue",
        "east",
        "--step-queue",
        "double=west",
        "--step-queue",
        "total=west",
    )
    deployment.install(text, "routed.py")
    deployment.wait_for_dag("routed")

    deployment.trigger("routed", "on-celery")

    assert deployment.wait_for_run("routed", "on-celery") == "success"
    key = f"dagster-airflow/{dagster_run_id('routed', 'on-celery')}/total/result"
    body = deployment.inside(lambda: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert pickle.loads(body) == dagster_in_process(routed, {}, "total")
    # Each worker's own log names the tasks it ran: its queue's, and only those.
    for queue in ("east", "west"):
        log = deployment.worker_log(queue)
        ran = {step for step in QUEUES if f"task_id='{step}'" in log}
        assert ran == {step for step, q in QUEUES.items() if q == queue}, log[-3000:]
    # Both workers' steps were forked by one server: one per code location, machine and user.
    forks = {step: deployment.forked_step("routed", "on-celery", step) for step in QUEUES}
    (server,) = {server for _, server in forks.values()}
    assert [s.pid for s in running_servers(deployment.runtime_dir)] == [server]
    listed = run_cli("servers", "--runtime-dir", str(deployment.runtime_dir))
    assert listed.returncode == 0, listed.stderr
    (row,) = listed.stdout.splitlines()[1:]
    assert row.split()[:2] == [str(server), "4"]  # pid, steps forked
