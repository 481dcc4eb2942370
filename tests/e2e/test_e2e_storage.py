"""The demo DAG through a real Airflow with S3 (moto server) and GCS (the emulator) storage."""

from __future__ import annotations

import json
import pickle
import urllib.parse
import uuid

import boto3
import pytest
import yaml

from dagster_airflow.model import dagster_run_id
from dagster_airflow.storage.gcs import EMULATOR_ENV, GCSStorage
from tests.conftest import EXAMPLES, scaffold
from tests.e2e.test_e2e_subprocess import dagster_in_process

pytestmark = pytest.mark.airflow

STEPS = ["multiply_the_word", "count_letters", "reverse_word", "count_reversed", "summarize"]


def expected_summary():
    from examples.demo import demo_pipeline

    run_config = yaml.safe_load((EXAMPLES / "demo.yml").read_text())
    return dagster_in_process(demo_pipeline, run_config, "summarize")


def scaffold_demo(dag_id: str, storage: str, *options: str) -> str:
    args = ["demo_pipeline", "-f", str(EXAMPLES / "demo.py"), "-e", str(EXAMPLES / "demo.yml")]
    args += ["--dag-id", dag_id, "--storage", storage]
    for option in options:
        args += ["--storage-option", option]
    return scaffold(*args)


def test_demo_on_s3_matches_dagster_and_keeps_the_secret_out_of_logs_and_xcoms(
    airflow_home, moto_server, monkeypatch
):
    bucket, prefix = "e2e-demo", "runs"
    key_id, secret = "AKIAE2EDEMO", f"s3cr3t-{uuid.uuid4().hex}"
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=bucket)
    # The connection carries everything: the DAG file names only the bucket.
    extra = urllib.parse.urlencode({"endpoint_url": moto_server, "region_name": "us-east-1"})
    monkeypatch.setitem(
        airflow_home.env,
        "AIRFLOW_CONN_AWS_DEFAULT",
        f"aws://{key_id}:{urllib.parse.quote(secret)}@/?{extra}",
    )
    text = scaffold_demo("e2e_s3", "s3", f"bucket={bucket}", f"prefix={prefix}")
    assert secret not in text and moto_server not in text
    airflow_home.install(text, "e2e_s3.py")

    result = airflow_home.dags_test("e2e_s3")

    assert result.succeeded, result.output[-3000:]
    assert result.states == dict.fromkeys(STEPS, "success")
    run_id = dagster_run_id("e2e_s3", result.run_id)
    root = f"{prefix}/{run_id}"
    keys = sorted(
        item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix=root)["Contents"]
    )
    assert keys == sorted(
        f"{root}/{step}/{name}"
        for step in STEPS
        for name in ("result", "events.jsonl", "outputs.json")
    )
    assert result.xcoms["summarize"] == {"result": f"s3://{bucket}/{root}/summarize/result"}
    body = s3.get_object(Bucket=bucket, Key=f"{root}/summarize/result")["Body"].read()
    assert pickle.loads(body) == expected_summary()
    assert f"Loaded input 'counts' from s3://{bucket}/{root}/count_letters/result" in (
        result.task_log("summarize")
    )

    assert secret not in result.output, "the secret access key is in a task log"
    logs = airflow_home.path / "logs"
    for path in logs.rglob("*") if logs.exists() else ():
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), f"the secret is in {path}"
    assert secret not in json.dumps(result.xcoms), "the secret access key is in an XCom"
    events = s3.get_object(Bucket=bucket, Key=f"{root}/summarize/events.jsonl")["Body"].read()
    assert secret.encode() not in events


def test_demo_on_gcs_matches_dagster(airflow_home, gcs_emulator, monkeypatch):
    bucket, prefix = "e2e-demo", "runs"
    monkeypatch.setenv(EMULATOR_ENV, gcs_emulator)
    storage = GCSStorage(bucket=bucket, prefix=prefix)
    storage.client.create_bucket(bucket)
    monkeypatch.setitem(airflow_home.env, EMULATOR_ENV, gcs_emulator)
    text = scaffold_demo("e2e_gcs", "gcs", f"bucket={bucket}", f"prefix={prefix}")
    airflow_home.install(text, "e2e_gcs.py")

    result = airflow_home.dags_test("e2e_gcs")

    assert result.succeeded, result.output[-3000:]
    assert result.states == dict.fromkeys(STEPS, "success")
    run_id = dagster_run_id("e2e_gcs", result.run_id)
    assert list(storage.list(run_id)) == sorted(
        f"{run_id}/{step}/{name}"
        for step in STEPS
        for name in ("result", "events.jsonl", "outputs.json")
    )
    assert result.xcoms["summarize"] == {
        "result": f"gs://{bucket}/{prefix}/{run_id}/summarize/result"
    }
    with storage.open_read(storage.key(run_id, "summarize", "result")) as stream:
        assert pickle.load(stream) == expected_summary()
