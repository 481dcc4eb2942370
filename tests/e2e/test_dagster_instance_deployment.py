"""The team's Dagster instance under a real deployment (the session's LocalExecutor), with
Debian's PostgreSQL server and a real dagster-webserver over the same instance, both inside the
deployment's network namespace, and a browser (Playwright, Debian's Chromium) on the Dagster UI.

Two DAG runs: one whose two first steps run in parallel, one step retried by Dagster, seen in
the UI's asset and run pages; and one a user stops (marks failed) while a step runs: CANCELED.
"""

from __future__ import annotations

import pytest

from dagster_airflow.model import dagster_run_id
from harness.airflow_deployment import AirflowDeployment
from harness.browser import AirflowBrowser
from harness.dagster_webserver import DagsterWebserver
from harness.postgres import PostgresServer, dagster_yaml, postgres_bin
from tests.conftest import JOBS, scaffold

pytestmark = [
    pytest.mark.airflow,
    pytest.mark.skipif(postgres_bin() is None, reason="no PostgreSQL (make system-packages)"),
]
DAG_ID = "catalog_team"
JOB_FILE = str(JOBS / "catalog.py")


@pytest.fixture(scope="module")
def team(airflow_deployment: AirflowDeployment, tmp_path_factory):
    """The instance (PostgreSQL), its webserver and the DAG, all inside the namespace."""
    server = PostgresServer()
    airflow_deployment.start_inside(server)
    home = tmp_path_factory.mktemp("dagster-home")
    web = DagsterWebserver(home, ["-f", JOB_FILE], dagster_yaml=dagster_yaml(server))
    airflow_deployment.inside(web.start)
    try:
        store = tmp_path_factory.mktemp("team-store")
        text = scaffold(
            "catalog",
            "-f",
            JOB_FILE,
            "--dag-id",
            DAG_ID,
            "--dagster-home",
            str(home),
            "--dagster-ui-url",
            web.url,
            "--storage-option",
            f"base_dir={store}",
        )
        airflow_deployment.install(text, f"{DAG_ID}.py")
        airflow_deployment.wait_for_dag(DAG_ID)
        yield home, web
    finally:
        web.stop()


def read_instance(airflow_deployment, home, function):
    """``function(instance)`` inside the namespace, where the database listens."""

    def read():
        from dagster import DagsterInstance

        with DagsterInstance.from_config(str(home)) as instance:
            return function(instance)

    return airflow_deployment.inside(read)


def step_events(instance, run_id):
    return [
        (e.step_key, e.dagster_event.event_type_value)
        for e in instance.all_logs(run_id)
        if e.dagster_event is not None
    ]


def test_parallel_steps_write_one_run_that_the_dagster_ui_shows(airflow_deployment, team, tmp_path):
    home, web = team
    airflow_deployment.trigger(DAG_ID, "parallel", {"partition": "eu"})
    assert airflow_deployment.wait_for_run(DAG_ID, "parallel") == "success"
    tis = airflow_deployment.task_instances(DAG_ID, "parallel")
    assert {t: ti["state"] for t, ti in tis.items()} == dict.fromkeys(
        ("prices", "volumes", "summary", "dagster_run_end"), "success"
    )
    # The first two steps ran at the same time, on two worker processes, into one run.
    prices, volumes = tis["prices"], tis["volumes"]
    assert volumes["try_number"] == 2
    run_id = dagster_run_id(DAG_ID, "parallel")

    def seen(instance):
        run = instance.get_run_by_id(run_id)
        return run.status.value, run.tags, step_events(instance, run_id)

    status, tags, events = read_instance(airflow_deployment, home, seen)
    assert status == "SUCCESS"
    assert tags["dagster-airflow/airflow_run_id"] == "parallel"
    assert ("volumes", "STEP_RESTARTED") in events
    assert events.count((None, "PIPELINE_START")) == 1
    assert prices["start_date"] < volumes["end_date"] or volumes["try_number"] > 1
    # The task's "Dagster run" link opens the run in the team's UI.
    _, links = airflow_deployment.rest(
        "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/parallel/taskInstances/summary/links"
    )
    assert links["extra_links"]["Dagster run"] == f"{web.url}/runs/{run_id}"

    from playwright.sync_api import expect

    with AirflowBrowser(airflow_deployment, tmp_path / "screenshots") as browser:
        page = browser.page
        try:
            page.goto(f"{web.url}/runs/{run_id}")
            for step in ("prices", "volumes", "summary"):
                expect(page.get_by_text(step, exact=True).first).to_be_visible()
            expect(page.get_by_text("Success").first).to_be_visible()
            browser.screenshot("dagster-run")
            # The asset's page: its latest materialization's metadata, then that run in its
            # events, with the partition.
            page.goto(f"{web.url}/assets/prices")
            expect(page.get_by_text("region", exact=True).first).to_be_visible()
            expect(page.get_by_text("Latest check results").first).to_be_visible()
            browser.screenshot("dagster-asset")
            page.goto(f"{web.url}/assets/prices?view=checks")
            expect(page.get_by_text("positive_rows").first).to_be_visible()
            page.goto(f"{web.url}/assets/prices?view=events")
            expect(page.get_by_text(run_id[:8]).first).to_be_visible()
            browser.screenshot("dagster-asset-events")
        except BaseException:
            print(browser.screenshot_failure("dagster-ui"))
            raise


def test_a_dag_run_stopped_while_a_step_runs_cancels_its_dagster_run(airflow_deployment, team):
    home, _ = team
    conf = {"partition": "us", "ops": {"prices": {"config": {"seconds": 600}}}}
    airflow_deployment.trigger(DAG_ID, "stopped", conf)
    airflow_deployment.wait_until(
        lambda: (
            airflow_deployment.task_instances(DAG_ID, "stopped")["prices"]["state"] == "running"
        ),
        300,
        "prices running",
    )
    # The task runs a moment before its step has created the Dagster run: stop the DAG run
    # once the step has started in the team's instance.
    run_id = dagster_run_id(DAG_ID, "stopped")
    airflow_deployment.wait_until(
        lambda: read_instance(
            airflow_deployment,
            home,
            lambda i: (
                i.get_run_by_id(run_id) is not None
                and ("prices", "STEP_START") in step_events(i, run_id)
            ),
        ),
        300,
        "the prices step started in the team's instance",
    )
    status, body = airflow_deployment.write(
        f"/api/v2/dags/{DAG_ID}/dagRuns/stopped", {"state": "failed"}, method="PATCH"
    )
    assert status == 200, body
    airflow_deployment.wait_until(
        lambda: (
            airflow_deployment.task_instances(DAG_ID, "stopped")["dagster_run_end"]["state"]
            in ("success", "failed")
        ),
        300,
        "the end task done",
    )
    status = read_instance(airflow_deployment, home, lambda i: i.get_run_by_id(run_id).status.value)
    assert status == "CANCELED"
