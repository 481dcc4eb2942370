"""Dagster semantics survive the move to Airflow: each job's `airflow dags test` run compared
with Dagster's own in-process run of it by the kit (dagster_airflow.testing.compare_job).

Each test first checks that Dagster's run exercises the feature (the fan-in sums ten, the retried
op took three attempts), then that Airflow's run has no difference from it."""

from __future__ import annotations

import pytest

from dagster_airflow.model import CodeLocation
from dagster_airflow.testing import compare_job
from tests.conftest import JOBS
from tests.jobs.semantics import config_mapping, graph_shapes

pytestmark = pytest.mark.airflow
SEMANTICS = JOBS / "semantics"


def compare(airflow_home, tmp_path, file: str, job: str, run_config=None):
    location = CodeLocation(python_file=str(SEMANTICS / file), working_directory=str(SEMANTICS))
    return compare_job(location, job, run_config, airflow_home=airflow_home, work_dir=tmp_path)


def outcomes(report) -> dict[str, tuple[str, int]]:
    return {key: (s.outcome, s.attempts) for key, s in report.dagster.steps.items()}


def test_graph_shapes(airflow_home, tmp_path):
    """Fan-in of ten, fan-in over optional outputs, Nothing, multi-output, nested graph config,
    branching on optional outputs."""
    report = compare(
        airflow_home, tmp_path, "graph_shapes.py", "graph_shapes", graph_shapes.RUN_CONFIG
    )

    steps = report.dagster.steps
    assert steps["sum_fan_in"].outputs == {"result": 10}
    assert steps["skipped_b"].outputs == {}
    assert steps["sum_produced"].outputs == {"result": 7}
    assert steps["fill_table"].outputs == {"result": "filled"}
    assert steps["total_items"].outputs == {"result": 21}
    assert steps["outer_words.inner_words.repeat_word"].outputs == {"result": "ababab"}
    assert steps["handle_positive"].outputs == {"result": "5 is positive"}
    assert steps["handle_negative"].outcome == "skipped"
    assert report.matches, str(report)


def test_retry_forms_and_hooks_under_retries(airflow_home, tmp_path):
    """@op(retry_policy=) with backoff and jitter, .with_retry_policy(), @job(op_retry_policy=),
    RetryRequested(max_retries=, seconds_to_wait=), retries exhausted; success and failure hooks
    on retried ops; an op with no policy of its own runs once."""
    report = compare(airflow_home, tmp_path, "retries.py", "retry_forms")

    assert outcomes(report) == {
        "decorated_policy": ("success", 3),
        "with_policy": ("success", 2),
        "job_policy": ("success", 2),
        "requests_retry": ("success", 2),
        "always_fails": ("failure", 2),
        "after_failure": ("upstream_failed", 0),
        "no_policy": ("success", 1),
    }
    assert report.dagster.steps["decorated_policy"].hooks() == {
        ("record_success", "completed"): 1,
        ("record_success", "skipped"): 2,
        ("record_failure", "skipped"): 3,
    }
    assert report.dagster.steps["always_fails"].hooks() == {
        ("record_failure", "completed"): 1,
        ("record_failure", "skipped"): 1,
        ("record_success", "skipped"): 2,
    }
    assert report.matches, str(report)


def test_config_mapping_with_pythonic_config(airflow_home, tmp_path):
    report = compare(
        airflow_home, tmp_path, "config_mapping.py", "mapped_config", config_mapping.RUN_CONFIG
    )

    assert report.dagster.steps["shout"].outputs == {"result": "HELLO, AIRFLOW!"}
    assert report.matches, str(report)


def test_asset_job_with_checks_default_config_and_op_retry_policy(airflow_home, tmp_path):
    """define_asset_job(config=RunConfig(...), op_retry_policy=): a passing check, a failing
    check that does not block (WARN), and a blocking check that fails its asset's step."""
    report = compare(airflow_home, tmp_path, "assets.py", "asset_checks_job")

    assert outcomes(report) == {
        "raw_numbers": ("success", 1),
        "cleaned": ("success", 1),
        "cleaned_cleaned_not_empty": ("success", 1),
        "cleaned_cleaned_has_no_zero": ("success", 1),
        "summary": ("success", 2),
        "stats": ("failure", 1),
        "stats_report": ("upstream_failed", 0),
    }
    steps = report.dagster.steps
    assert steps["raw_numbers"].outputs == {"result": [0, 1, 2, 3]}  # the job's default config
    assert steps["stats"].materializations() == {("stats", None): 1}
    assert steps["stats"].checks() == {("stats", "all_positive"): ["failed (ERROR)"]}
    assert steps["cleaned_cleaned_not_empty"].checks() == {
        ("cleaned", "cleaned_not_empty"): ["passed (ERROR)"]
    }
    assert steps["cleaned_cleaned_has_no_zero"].checks() == {
        ("cleaned", "cleaned_has_no_zero"): ["failed (WARN)"]
    }
    assert report.matches, str(report)


def test_dynamic_shapes(airflow_home, tmp_path):
    """Chained maps and a collect, a second dynamic output mapped over a graph of two ops, and a
    dynamic output with no keys (its mapped step never runs; the collect gets [])."""
    report = compare(airflow_home, tmp_path, "dynamic.py", "dynamic_shapes")

    steps = report.dagster.steps
    assert steps["join_pieces"].outputs == {"result": "ALPHA! BETA!"}
    assert steps["exclaim[piece_beta]"].outputs == {"result": "BETA!"}
    assert steps["double_then_add.add_one[n5]"].outputs == {"result": 11}
    assert steps["total"].outputs == {"result": 18}
    assert steps["never_runs[?]"].outcome == "skipped"
    assert steps["count_pieces"].outputs == {"result": 0}
    assert report.matches, str(report)


def test_retry_requested_without_a_retry_policy(airflow_home, tmp_path):
    """An op with no RetryPolicy is retried exactly as often as it asks Dagster to
    (RetryRequested), the scaffold's tries being a cap only; an op Dagster does not retry runs
    once, though its task has tries left (DEFAULT_ARGS' retries)."""
    report = compare(airflow_home, tmp_path, "retry_requests.py", "retry_requests")

    assert outcomes(report) == {
        "asks_twice": ("success", 3),
        "asks_too_often": ("failure", 2),
        "plain_failure": ("failure", 1),
        "after_failure": ("upstream_failed", 0),
        "steady": ("success", 1),
    }
    assert report.dagster.steps["asks_twice"].hooks() == {
        ("record_success", "completed"): 1,
        ("record_success", "skipped"): 2,
        ("record_failure", "skipped"): 3,
    }
    assert report.matches, str(report)
    log = report.airflow_output
    assert "Dagster step 'asks_twice' failed on try 1 and is retried in 0.2 s" in log
    assert "Dagster does not retry this failure" in log
