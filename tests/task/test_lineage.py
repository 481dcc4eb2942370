"""A step's OpenLineage (dagster_airflow.task.lineage), as Airflow's provider serializes it."""

from __future__ import annotations

import json

import pytest

from dagster_airflow.step_result import StepEvent
from dagster_airflow.task.lineage import StepLineage, operator_lineage

pytest.importorskip("airflow.providers.openlineage")

EVENTS = [
    StepEvent("LOADED_INPUT", input_name="volumes", uri="s3://bucket/prefix/run/volumes/result"),
    StepEvent("LOADED_INPUT", input_name="rates", uri="file:///data/run/rates/result"),
    StepEvent("HANDLED_OUTPUT", output_name="result", uri="s3://bucket/prefix/run/summary/result"),
    StepEvent("ASSET_MATERIALIZATION", asset_key="reports/summary", partition="eu"),
    StepEvent("STEP_SUCCESS"),
]


def test_inputs_outputs_and_assets_are_datasets_and_the_job_facet_names_job_and_op():
    from openlineage.client.serde import Serde

    lineage = StepLineage.from_events("catalog", "report.summary[eu]", "run-1", EVENTS)
    assert lineage.op_name == "summary"
    found = json.loads(Serde.to_json(operator_lineage(lineage)))
    assert [(d["namespace"], d["name"]) for d in found["inputs"]] == [
        ("s3://bucket", "prefix/run/volumes/result"),
        ("file", "/data/run/rates/result"),
    ]
    assert [(d["namespace"], d["name"]) for d in found["outputs"]] == [
        ("s3://bucket", "prefix/run/summary/result"),
        ("dagster", "reports/summary"),
    ]
    facet = found["job_facets"]["dagster"]
    assert {k: facet[k] for k in ("job", "op", "step_key", "dagster_run_id")} == {
        "job": "catalog",
        "op": "summary",
        "step_key": "report.summary[eu]",
        "dagster_run_id": "run-1",
    }
