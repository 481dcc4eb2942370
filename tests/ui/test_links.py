"""Where the task links point: console pages for object stores, file URLs for paths."""

from __future__ import annotations

import pytest

from dagster_airflow.storage.base import browse_url
from dagster_airflow.storage.filesystem import FilesystemStorage
from tests.test_boundaries import imported_after


@pytest.mark.parametrize(
    ("uri", "folder", "url"),
    [
        (
            "s3://bucket/prefix/run/step/result",
            False,
            "https://s3.console.aws.amazon.com/s3/object/bucket?prefix=prefix/run/step/result",
        ),
        (
            "s3://bucket/run/step/",
            True,
            "https://s3.console.aws.amazon.com/s3/buckets/bucket?prefix=run/step/",
        ),
        (
            "gs://bucket/prefix/run/step/result",
            False,
            "https://console.cloud.google.com/storage/browser/_details/bucket/prefix/run/step/result",
        ),
        (
            "gs://bucket/run/step/",
            True,
            "https://console.cloud.google.com/storage/browser/bucket/run/step/",
        ),
        ("/data/a run/step/result", False, "file:///data/a%20run/step/result"),
        ("/data/run/step", True, "file:///data/run/step/"),
        ("https://example.invalid/x", False, "https://example.invalid/x"),
    ],
)
def test_browse_url(uri, folder, url):
    assert browse_url(uri, folder) == url


def test_a_storage_browses_its_own_keys(tmp_path):
    storage = FilesystemStorage(base_dir=str(tmp_path))
    assert storage.browse_url("run/step/result") == f"file://{tmp_path}/run/step/result"


def test_the_airflow_plugin_imports_no_dagster():
    modules = imported_after("import dagster_airflow.ui.airflow_plugin")
    assert "airflow.plugins_manager" in modules
    assert not [m for m in modules if m.split(".")[0] == "dagster"]


def test_the_outputs_link_reads_what_execute_returned_not_the_xcom(tmp_path):
    """Airflow computes the links in the task's process as it ends: the outputs link takes the
    outputs execute returned, with no round trip through the execution API for its own XCom,
    and only the links that have a URL are written."""
    import types

    from airflow.sdk import DAG

    from dagster_airflow.operator import DagsterOperator
    from dagster_airflow.ui.links import StepOutputsLink
    from tests.conftest import JOBS

    with DAG(dag_id="links_dag", schedule=None):
        task = DagsterOperator(
            task_id="load_prices",
            job_name="prices",
            code_location={"python_file": str(JOBS / "prices.py")},
            runner={"name": "subprocess", "warm": False},
            storage={"name": "filesystem", "base_dir": str(tmp_path)},
        )
    every_link = ["Dagster outputs", "Dagster event log", "Dagster run"]
    assert [link.name for link in task.operator_extra_links] == every_link
    ti = types.SimpleNamespace(try_number=1, max_tries=0, map_index=-1)
    returned = task.execute({"ti": ti, "run_id": "manual__links"})
    assert set(returned) == {"result"}
    # Airflow writes an XCom per link it is given as the task ends: the run link has no URL
    # for this runner, so it is not given (the UI shows a missing link as an empty one).
    assert [link.name for link in task.operator_extra_links] == every_link[:2]

    def no_pull(**kwargs):
        raise AssertionError(f"the link pulled an XCom: {kwargs}")

    ti_key = types.SimpleNamespace(
        dag_id="links_dag",
        run_id="manual__links",
        task_id="load_prices",
        map_index=-1,
        try_number=1,
        state="success",
        xcom_pull=no_pull,
    )
    assert StepOutputsLink().link(task, ti_key) == (
        "/dagster-airflow/steps/links_dag/manual__links/load_prices?map_index=-1&try_number=1"
    )


def test_the_serialized_dag_offers_all_three_links_of_a_mapped_task_too():
    """The UI's buttons come from the serialized DAG: every link, for a plain and a mapped task."""
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    from dagster_airflow.operator import DagsterOperator

    with DAG(dag_id="links_serialized", schedule=None) as dag:
        DagsterOperator(task_id="plain", job_name="j", code_location={"python_file": "j.py"})
        DagsterOperator.partial(
            task_id="mapped", job_name="j", code_location={"python_file": "j.py"}
        ).expand(mapping_key=["a", "b"])
    encoded = DagSerialization.to_dict(dag)["dag"]["tasks"]
    links = {t["__var"]["task_id"]: t["__var"]["_operator_extra_links"] for t in encoded}
    expected = {
        "Dagster outputs": "_link_StepOutputsLink",
        "Dagster event log": "_link_StepEventLogLink",
        "Dagster run": "_link_DagsterRunLink",
    }
    assert links == {"plain": expected, "mapped": expected}
