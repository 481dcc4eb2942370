"""The team's Dagster instance sees what Airflow ran (scaffold --dagster-home): a real Airflow
(`airflow dags test`), Debian's PostgreSQL server holding the instance, and Dagster's own reads
of it (runs, event log, asset catalog), as dagster-webserver would show them."""

from __future__ import annotations

import json

import pytest

from dagster_airflow.model import dagster_run_id
from harness.postgres import PostgresServer, dagster_yaml, postgres_bin
from tests.conftest import JOBS, scaffold

pytestmark = [
    pytest.mark.airflow,
    pytest.mark.skipif(
        postgres_bin() is None, reason="no PostgreSQL server (make system-packages)"
    ),
]
UI = "http://127.0.0.1:3999"


@pytest.fixture(scope="module")
def dagster_home(tmp_path_factory):
    """A Dagster home whose dagster.yaml names a fresh PostgreSQL database."""
    home = tmp_path_factory.mktemp("dagster-home")
    with PostgresServer() as server:
        (home / "dagster.yaml").write_text(dagster_yaml(server))
        yield home


def instance(home):
    from dagster import DagsterInstance

    return DagsterInstance.from_config(str(home))


def events_of(dagster, run_id: str) -> list[tuple[str | None, str]]:
    return [
        (e.step_key, e.dagster_event.event_type_value)
        for e in dagster.all_logs(run_id)
        if e.dagster_event is not None
    ]


def test_a_dag_run_is_one_dagster_run_with_its_catalog_retries_and_end(
    airflow_home, dagster_home, tmp_path
):
    text = scaffold(
        "catalog",
        "-f",
        str(JOBS / "catalog.py"),
        "--dag-id",
        "catalog_instance",
        "--dagster-home",
        str(dagster_home),
        "--dagster-ui-url",
        UI,
        "--storage-option",
        f"base_dir={tmp_path / 'store'}",
    )
    assert "Each DAG run is one Dagster run in the instance" in text
    airflow_home.install(text, "catalog_instance.py")
    # Airflow's OpenLineage provider, its events to a file (the provider's file transport).
    lineage_file = tmp_path / "openlineage.jsonl"
    transport = {"type": "file", "log_file_path": str(lineage_file), "append": True}
    lineage_env = {
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "tests",
    }
    airflow_home.env.update(lineage_env)
    try:
        result = airflow_home.dags_test("catalog_instance", conf={"partition": "eu"})
    finally:
        for name in lineage_env:
            airflow_home.env.pop(name)
    assert result.states == {
        "prices": "success",
        "volumes": "success",
        "summary": "success",
        "dagster_run_end": "success",
    }, result.output[-3000:]
    run_id = dagster_run_id("catalog_instance", result.run_id)

    with instance(dagster_home) as dagster:
        run = dagster.get_run_by_id(run_id)
        assert run.status.value == "SUCCESS"
        assert run.tags["dagster-airflow/dag_id"] == "catalog_instance"
        assert run.tags["dagster-airflow/airflow_run_id"] == result.run_id
        assert len(run.tags["dagster-airflow/plan_fingerprint"]) == 16
        assert run.tags["dagster/partition"] == "eu"
        events = events_of(dagster, run_id)
        # Dagster's retry is an attempt of the same run: up for retry, then restarted.
        volumes = [kind for step, kind in events if step == "volumes"]
        assert volumes.index("STEP_UP_FOR_RETRY") < volumes.index("STEP_RESTARTED")
        assert volumes.count("STEP_SUCCESS") == 1
        assert [kind for _, kind in events if kind.startswith("PIPELINE_")] == [
            "PIPELINE_START",
            "PIPELINE_SUCCESS",
        ]
        # The catalog: each asset's last materialization is this run's, for partition eu.
        for asset, rows in (("prices", 3), ("volumes", 5), ("summary", 8)):  # summary: 3 + 5
            record = dagster.get_latest_materialization_event(dg_key(asset))
            assert record.run_id == run_id
            materialization = record.asset_materialization
            assert materialization.partition == "eu"
            assert materialization.metadata["rows"].value == rows
        check = dagster.event_log_storage.get_latest_asset_check_execution_by_key(
            [check_key("prices", "positive_rows")]
        )[check_key("prices", "positive_rows")]
        assert check.run_id == run_id
        assert check.status.value == "SUCCEEDED"
        observed = dagster.fetch_observations(dg_key("price_feed"), limit=1).records
        assert observed[0].run_id == run_id
        assert observed[0].asset_observation.partition == "eu"

    # The task's "Dagster run" link (and step tab) open the run in the team's Dagster UI.
    url = airflow_home.xcom("catalog_instance", result.run_id, "summary", "dagster_run_url")
    assert url == f"{UI}/runs/{run_id}"

    # Lineage: summary read volumes' stored output and made the asset summary; the job facet
    # names the Dagster job and op.
    (complete,) = [
        event
        for event in map(json.loads, lineage_file.read_text().splitlines())
        if event["eventType"] == "COMPLETE" and event["job"]["name"] == "catalog_instance.summary"
    ]
    store = str(tmp_path / "store")
    assert [(d["namespace"], d["name"]) for d in complete["inputs"]] == [
        ("file", f"{store}/{run_id}/volumes/result")
    ]
    assert ("dagster", "summary") in [(d["namespace"], d["name"]) for d in complete["outputs"]]
    facet = complete["job"]["facets"]["dagster"]
    assert (facet["job"], facet["op"], facet["dagster_run_id"]) == ("catalog", "summary", run_id)


def test_a_task_that_fails_for_good_fails_the_dagster_run(airflow_home, dagster_home, tmp_path):
    text = scaffold(
        "catalog",
        "-f",
        str(JOBS / "catalog.py"),
        "--dag-id",
        "catalog_failing",
        "--dagster-home",
        str(dagster_home),
        "--storage-option",
        f"base_dir={tmp_path / 'store'}",
    )
    airflow_home.install(text, "catalog_failing.py")
    conf = {"partition": "us", "ops": {"summary": {"config": {"fail": True}}}}
    result = airflow_home.dags_test("catalog_failing", conf=conf)
    assert result.states["summary"] == "failed"
    assert result.states["dagster_run_end"] == "success", result.output[-3000:]
    run_id = dagster_run_id("catalog_failing", result.run_id)
    with instance(dagster_home) as dagster:
        assert dagster.get_run_by_id(run_id).status.value == "FAILURE"
        events = events_of(dagster, run_id)
        assert ("summary", "STEP_FAILURE") in events
        assert events[-1] == (None, "PIPELINE_FAILURE")
        # The steps that succeeded are in the catalog, for partition us, from this run.
        record = dagster.get_latest_materialization_event(dg_key("prices"))
        assert (record.run_id, record.asset_materialization.partition) == (run_id, "us")


def dg_key(name: str):
    import dagster as dg

    return dg.AssetKey(name)


def check_key(asset: str, name: str):
    import dagster as dg

    return dg.AssetCheckKey(dg.AssetKey(asset), name)
