"""Dagster semantics survive the move to Airflow: each job's `airflow dags test` run compared
with Dagster's own in-process run of it by the kit (dagster_airflow.testing.compare_job).

Each test first checks that Dagster's run exercises the feature (the fan-in sums ten, the retried
op took three attempts), then that Airflow's run has no difference from it."""

from __future__ import annotations

import pytest

from dagster_airflow.model import CodeLocation
from dagster_airflow.testing import compare_job
from tests.conftest import JOBS
from tests.jobs.semantics import config_mapping, graph_shapes, spanning

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


def materialize_partitions(base_dir, io_manager=None) -> None:
    """What the runs of the partitioned assets' own DAGs leave: paint's three partitions and
    shade's but blue (spanning.MISSING_SHADE), each its own run."""
    import dagster as dg

    from dagster_airflow.storage.filesystem import FilesystemStorage
    from dagster_airflow.worker.io_manager import IntermediateIOManager, intermediate_io_manager

    storage = FilesystemStorage(str(base_dir))
    io_manager = io_manager or intermediate_io_manager(IntermediateIOManager(storage))
    both = dg.AssetSelection.assets(spanning.paint, spanning.shade).without_checks()
    for color in spanning.COLORS.get_partition_keys():
        selection = both
        if color == spanning.MISSING_SHADE:
            selection = dg.AssetSelection.assets(spanning.paint).without_checks()
        assets = [*spanning.defs.assets, *spanning.defs.asset_checks]
        result = dg.materialize(
            assets, selection=selection, partition_key=color, resources={"io_manager": io_manager}
        )
        assert result.success


def dagster_filesystem_run(base_dir) -> dict:
    """Dagster's own run of the job with its own FilesystemIOManager: step key -> its output,
    check result or the class of its failure's cause."""
    import dagster as dg

    io_manager = dg.FilesystemIOManager(base_dir=str(base_dir))
    materialize_partitions(base_dir, io_manager)
    job = spanning.defs.resolve_job_def("spanning")
    result = job.execute_in_process(resources={"io_manager": io_manager}, raise_on_error=False)
    found = {}
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            found[event.step_key] = event.event_specific_data.error.cause.cls_name
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            found[event.step_key] = event.event_specific_data.passed
        elif event.event_type_value == "STEP_OUTPUT":
            found[event.step_key] = result.output_for_node(event.step_key)
    return found


def test_inputs_that_span_partitions(airflow_home, tmp_path):
    """An unpartitioned asset and an asset check reading every partition of a partitioned asset
    (a dict by partition key), a missing partition (fails as in Dagster), a missing partition
    allowed; the partitions materialized earlier by runs of their own. Partition mappings onto
    several partitions (daily into weekly, static): tests/worker/test_asset_partitions.py."""
    for side in ("airflow", "dagster"):
        materialize_partitions(tmp_path / f"{side}-storage")

    report = compare(airflow_home, tmp_path, "spanning.py", "spanning")

    assert outcomes(report) == {
        "palette": ("success", 1),
        "paint_paint_has_every_color": ("success", 1),
        "shades": ("failure", 1),
        "tolerant_shades": ("success", 1),
    }
    assert report.matches, str(report)
    # The values Dagster's own FilesystemIOManager loads, and its failure a FileNotFoundError.
    theirs = dagster_filesystem_run(tmp_path / "filesystem-io-manager")
    ours = report.airflow.steps
    assert (
        ours["palette"].outputs["result"]
        == theirs["palette"]
        == [
            ("blue", "blue paint"),
            ("green", "green paint"),
            ("red", "red paint"),
        ]
    )
    assert ours["tolerant_shades"].outputs["result"] == theirs["tolerant_shades"]
    assert ours["paint_paint_has_every_color"].checks() == {
        ("paint", "paint_has_every_color"): ["passed (ERROR)"]
    }
    assert theirs["paint_paint_has_every_color"] is True
    assert theirs["shades"] == "FileNotFoundError"
    [failure] = [e for e in ours["shades"].events if e.event_type == "STEP_FAILURE"]
    assert failure.error.cause.class_name == "AssetPartitionNotFoundError"
    assert (
        "partition 'blue' of asset 'shade' was never materialized: there is no copy of it at "
        in report.airflow_output
    )
