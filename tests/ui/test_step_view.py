"""The Dagster step view, against real runs of one job on each storage (filesystem, S3 on moto,
GCS on its emulator), read through Airflow's own api-server app in-process with a real token."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse

import boto3
import pytest
import yaml

from dagster_airflow.model import dagster_run_id
from dagster_airflow.storage.gcs import EMULATOR_ENV, GCSStorage
from dagster_airflow.testing import AirflowHome
from tests.conftest import EXAMPLES, JOBS, scaffold

pytestmark = pytest.mark.airflow

PARTITION = "north"
TASKS = ("words", "trap", "broken")

# Airflow's api-server app, in-process (no socket), with a token from its own auth manager.
VIEW_CLIENT = """
import json, sys
from pathlib import Path
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app

client = TestClient(create_app())
home = Path(sys.argv[1])
password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
token = client.post("/auth/token", json={"username": "admin", "password": password}).json()
headers = {"Authorization": f"Bearer {token['access_token']}"}
dag_id, run_id, *task_ids = sys.argv[2:]
pages = {}
for task_id in task_ids:
    path = f"{dag_id}/{run_id}/{task_id}"
    html = client.get(f"/dagster-airflow/steps/{path}", params={"map_index": -1}, headers=headers)
    data = client.get(f"/dagster-airflow/api/steps/{path}", headers=headers)
    assert html.status_code == 200 and data.status_code == 200, (html.text, data.text)
    pages[task_id] = {"html": html.text, "json": data.json()}
# What a wrong address answers: no such task, no such try; and without credentials.
first = task_ids[0]
wrong = {
    "no task": client.get(f"/dagster-airflow/steps/{dag_id}/{run_id}/nope", headers=headers),
    "no try": client.get(
        f"/dagster-airflow/api/steps/{dag_id}/{run_id}/{first}?try_number=5", headers=headers
    ),
    "no token": client.get(f"/dagster-airflow/steps/{dag_id}/{run_id}/{first}"),
}
pages["_wrong"] = {k: [r.status_code, r.json().get("detail")] for k, r in wrong.items()}
print(json.dumps(pages))
"""


def view_job_dag(dag_id: str, tmp_path, storage: str, *options: str) -> tuple[str, str]:
    """The job's DAG file, and the marker path a Trap's unpickling would write."""
    marker = tmp_path / f"{dag_id}-unpickled"
    config = tmp_path / f"{dag_id}.yml"
    config.write_text(yaml.safe_dump({"ops": {"trap": {"config": {"marker": str(marker)}}}}))
    args = ["view_job", "-f", str(JOBS / "step_view.py"), "-e", str(config), "--dag-id", dag_id]
    args += ["--storage", storage]
    for option in options:
        args += ["--storage-option", option]
    return scaffold(*args), marker


def view_pages(home: AirflowHome, dag_id: str, run_id: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", VIEW_CLIENT, str(home.path), dag_id, run_id, *TASKS],
        env=home.env,
        capture_output=True,
        text=True,
        cwd=home.path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_view_job(home: AirflowHome, dag_id: str, text: str) -> str:
    home.install(text, f"{dag_id}.py")
    result = home.dags_test(dag_id, conf={"partition": PARTITION})
    # words and trap succeed; broken fails, as the job means it to.
    assert result.states == {"words": "success", "trap": "success", "broken": "failed"}, (
        result.output[-3000:]
    )
    return result.run_id


def check_pages(pages: dict, marker, uri_root: str) -> None:
    """What every storage's view shows of the job's run."""
    words = pages["words"]["json"]
    kinds = [e["event_type"] for e in words["events"]]
    assert "STEP_START" in kinds and kinds[-1] == "STEP_SUCCESS"
    (materialized,) = [e for e in words["events"] if e["event_type"] == "ASSET_MATERIALIZATION"]
    assert (materialized["asset_key"], materialized["partition"]) == ("words", PARTITION)
    (check,) = [e for e in words["events"] if e["event_type"] == "ASSET_CHECK_EVALUATION"]
    assert (check["check_name"], check["passed"]) == ("not_empty", True)
    result = next(o for o in words["outputs"] if o["name"] == "result")
    assert result["uri"] == f"{uri_root}/words/result"
    assert result["type"] == "list" and result["size"] > 1000
    assert result["preview"].startswith(f"['{PARTITION}-0', '{PARTITION}-1'")
    assert result["preview"].endswith(", ...]")
    assert result["metadata"] == {"count": 100}
    assert words["state"] == "success" and words["error"] is None

    loaded = [e for e in pages["trap"]["json"]["events"] if e["event_type"] == "LOADED_INPUT"]
    assert [e["uri"] for e in loaded] == [f"{uri_root}/words/result"]
    (trap,) = pages["trap"]["json"]["outputs"]
    assert (trap["type"], trap["preview"]) == ("step_view.Trap", "Trap(rows=500)")
    assert not marker.exists(), "the view unpickled an output"

    broken = pages["broken"]["json"]
    assert broken["state"] == "failed"
    chain, error = [], broken["error"]
    while error:
        chain.append((error["class_name"], error["message"]))
        error = error["cause"]
    assert chain[1:] == [("RuntimeError", "could not parse 100 words"), ("KeyError", "'column_x'")]

    html = pages["words"]["html"]
    assert html.count('data-testid="dagster-event"') == len(words["events"])
    assert 'data-testid="dagster-timeline"' in html
    assert 'data-testid="dagster-output-preview">[&#x27;north-0&#x27;' in html
    assert "<script" not in html
    broken_html = pages["broken"]["html"]
    assert 'data-testid="dagster-error"' in broken_html
    assert 'data-testid="dagster-error-cause">caused by <b>RuntimeError</b>' in broken_html
    assert 'data-testid="dagster-error-cause">caused by <b>KeyError</b>' in broken_html


def test_the_view_of_a_filesystem_run(airflow_home, tmp_path):
    storage_dir = tmp_path / "storage"
    text, marker = view_job_dag("view_fs", tmp_path, "filesystem", f"base_dir={storage_dir}")
    run_id = run_view_job(airflow_home, "view_fs", text)
    pages = view_pages(airflow_home, "view_fs", run_id)
    check_pages(pages, marker, f"{storage_dir}/{dagster_run_id('view_fs', run_id)}")
    words = pages["words"]["json"]
    assert (
        words["event_log_uri"]
        == f"{storage_dir}/{dagster_run_id('view_fs', run_id)}/words/events.jsonl"
    )
    assert words["storage"] == "filesystem" and words["dagster_run_url"] is None
    assert pages["_wrong"] == {
        "no task": [
            404,
            f"no task instance 'nope' (map index -1) in run {run_id!r} of DAG 'view_fs'; open "
            "the view from the task instance's page in the Airflow UI.",
        ],
        "no try": [
            404,
            f"task 'words' of run {run_id!r} has no try 5 (its tries are 1 to 1); leave "
            "try_number out for the latest.",
        ],
        "no token": [401, "Not authenticated"],
    }


def test_the_view_of_an_s3_run_reads_with_the_dags_connection(airflow_home, tmp_path, moto_server):
    bucket, prefix = "view-runs", "runs"
    boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    # Only the connection says where S3 is and who reads it: the api-server's environment does
    # not, so the view can have read the run only with the DAG's connection.
    extra = urllib.parse.urlencode({"endpoint_url": moto_server, "region_name": "us-east-1"})
    home = AirflowHome(
        airflow_home.path, env={"AIRFLOW_CONN_AWS_DEFAULT": f"aws://testing:testing@/?{extra}"}
    )
    where = (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    )
    assert not set(where) & set(home.env)
    text, marker = view_job_dag("view_s3", tmp_path, "s3", f"bucket={bucket}", f"prefix={prefix}")
    run_id = run_view_job(home, "view_s3", text)
    pages = view_pages(home, "view_s3", run_id)
    check_pages(pages, marker, f"s3://{bucket}/{prefix}/{dagster_run_id('view_s3', run_id)}")
    assert pages["words"]["json"]["storage"] == "s3"


def test_the_view_of_a_gcs_run(airflow_home, tmp_path, gcs_emulator, monkeypatch):
    bucket, prefix = "view-runs", "runs"
    monkeypatch.setenv(EMULATOR_ENV, gcs_emulator)
    GCSStorage(bucket=bucket).client.create_bucket(bucket)
    home = AirflowHome(airflow_home.path, env={EMULATOR_ENV: gcs_emulator})
    text, marker = view_job_dag("view_gcs", tmp_path, "gcs", f"bucket={bucket}", f"prefix={prefix}")
    run_id = run_view_job(home, "view_gcs", text)
    pages = view_pages(home, "view_gcs", run_id)
    check_pages(pages, marker, f"gs://{bucket}/{prefix}/{dagster_run_id('view_gcs', run_id)}")
    assert pages["words"]["json"]["storage"] == "gcs"


MAPPED_CLIENT = """
import json, sys
from pathlib import Path
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app

client = TestClient(create_app())
home = Path(sys.argv[1])
password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
token = client.post("/auth/token", json={"username": "admin", "password": password}).json()
headers = {"Authorization": f"Bearer {token['access_token']}"}
dag_id, run_id = sys.argv[2:]
pages = {}
for task_id, map_index in (("split_into_pieces", -1), ("compute_piece", 1)):
    url = f"/dagster-airflow/api/steps/{dag_id}/{run_id}/{task_id}?map_index={map_index}"
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    pages[task_id] = response.json()
print(json.dumps(pages))
"""


def test_the_view_of_a_mapped_task_instance_is_its_own_mapping_key(airflow_home, tmp_path):
    storage_dir = tmp_path / "storage"
    text = scaffold(
        "pieces", "-f", str(EXAMPLES / "pieces.py"), "--dag-id", "view_pieces",
        "--storage-option", f"base_dir={storage_dir}",
    )  # fmt: skip
    airflow_home.install(text, "view_pieces.py")
    result = airflow_home.dags_test("view_pieces")
    assert result.succeeded, result.output[-3000:]
    done = subprocess.run(
        [sys.executable, "-c", MAPPED_CLIENT, str(airflow_home.path), "view_pieces", result.run_id],
        env=airflow_home.env,
        capture_output=True,
        text=True,
        cwd=airflow_home.path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    pages = json.loads(done.stdout.strip().splitlines()[-1])
    root = f"{storage_dir}/{dagster_run_id('view_pieces', result.run_id)}"
    # The dynamic output: one stored object per mapping key, each with its own preview.
    split = pages["split_into_pieces"]["outputs"]
    assert [(o["name"], o["uri"], o["preview"]) for o in split] == [
        (f"result[piece_{n}]", f"{root}/split_into_pieces/result[piece_{n}]", str(n))
        for n in (1, 2, 3)
    ]
    piece = pages["compute_piece"]  # map index 1: the second mapping key
    assert piece["step_key"] == "compute_piece[piece_2]"
    assert [(o["uri"], o["preview"]) for o in piece["outputs"]] == [
        (f"{root}/compute_piece[piece_2]/result", "4")
    ]


TRIES_CLIENT = """
import json, sys
from pathlib import Path
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app

client = TestClient(create_app())
home = Path(sys.argv[1])
password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
token = client.post("/auth/token", json={"username": "admin", "password": password}).json()
headers = {"Authorization": f"Bearer {token['access_token']}"}
dag_id, run_id, task_id = sys.argv[2:]
url = f"/dagster-airflow/api/steps/{dag_id}/{run_id}/{task_id}"
tries = {n: client.get(url, params={"try_number": n}, headers=headers).json() for n in (1, 3)}
tries["latest"] = client.get(url, headers=headers).json()
print(json.dumps(tries))
"""


def test_each_try_of_a_retried_task_shows_its_own_events(airflow_home, tmp_path):
    from tests.e2e.test_e2e_retries import run_retries_dag

    def edit(text: str) -> str:  # as docs/scaffold.md tells a user of RetryRequested(2)
        task = 'DagsterOperator(task_id="requests_retry"'
        assert task in text
        return text.replace(task, task + ", retries=2")

    result, _, _ = run_retries_dag(airflow_home, tmp_path, "retry_requested", edit)
    assert result.states["requests_retry"] == "success", result.output[-3000:]
    done = subprocess.run(
        [sys.executable, "-c", TRIES_CLIENT, str(airflow_home.path), "e2e_retry_requested",
         result.run_id, "requests_retry"],
        env=airflow_home.env,
        capture_output=True,
        text=True,
        cwd=airflow_home.path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    tries = {k: v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}
    first, third = tries["1"], tries["3"]
    assert first["tries"] == third["tries"] == 3 and tries["latest"] == third

    def outcomes(page: dict) -> list[str]:  # the step's own ends (its hooks' events follow)
        ends = ("STEP_SUCCESS", "STEP_FAILURE", "STEP_UP_FOR_RETRY", "STEP_SKIPPED")
        return [e["event_type"] for e in page["events"] if e["event_type"] in ends]

    assert {e["attempt"] for e in first["events"]} == {1}
    assert outcomes(first) == ["STEP_UP_FOR_RETRY"]
    assert first["error"]["class_name"] == "RetryRequested" and first["outputs"] == []
    assert {e["attempt"] for e in third["events"]} == {3}
    assert outcomes(third) == ["STEP_SUCCESS"] and third["error"] is None
    assert [(o["name"], o["preview"]) for o in third["outputs"]] == [("result", "2")]
    assert third["state"] == "success"
