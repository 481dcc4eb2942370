"""An input that spans partitions loads as with Dagster's own IO manager: the same runs made with
Dagster's FilesystemIOManager and with ours (the worker's), and the reading step's value, or
its failure, compared. Through Airflow: test_inputs_that_span_partitions in
tests/e2e/test_semantics.py.
"""

from __future__ import annotations

import os
import pickle
import subprocess

import dagster as dg

from dagster_airflow.errors import AssetPartitionNotFoundError
from dagster_airflow.model import REQUEST_ENV_VAR, CodeLocation, StepRequest, StorageSpec
from dagster_airflow.storage.filesystem import FilesystemStorage
from dagster_airflow.worker.io_manager import IntermediateIOManager, intermediate_io_manager
from tests.conftest import CLI, JOBS
from tests.jobs.semantics import spanning

ASSETS = spanning.defs.assets
CHECKS = spanning.defs.asset_checks


def materialize(io_manager, selection, partition: str | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*ASSETS, *CHECKS],
        selection=selection,
        partition_key=partition,
        resources={"io_manager": io_manager},
        raise_on_error=False,
    )


def outcome(result: dg.ExecuteInProcessResult, step_key: str) -> tuple:
    """("success", the step's output or check result) or ("failure", the error's classes)."""
    for event in result.all_events:
        if event.step_key != step_key:
            continue
        if event.event_type_value == "STEP_FAILURE":
            error, classes = event.event_specific_data.error, []
            while error is not None:
                classes.append(error.cls_name)
                error = error.cause
            return ("failure", tuple(classes))
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            return ("success", event.event_specific_data.passed)
    return ("success", result.output_for_node(step_key))


def both(tmp_path, runs, reads) -> tuple[dict, dict]:
    """The same runs under Dagster's FilesystemIOManager and ours; then each of ``reads``
    (selection, partition, step keys) read back from both, (step key, partition) -> outcome."""
    theirs = dg.FilesystemIOManager(base_dir=str(tmp_path / "dagster"))
    ours = intermediate_io_manager(IntermediateIOManager(FilesystemStorage(str(tmp_path / "ours"))))
    found: dict[str, dict] = {"theirs": {}, "ours": {}}
    for side, io_manager in (("theirs", theirs), ("ours", ours)):
        for selection, partition in runs:
            assert materialize(io_manager, selection, partition).success
        for selection, partition, steps in reads:
            result = materialize(io_manager, selection, partition)
            found[side] |= {(step, partition): outcome(result, step) for step in steps}
    return found["theirs"], found["ours"]


def test_unpartitioned_readers_get_every_partition_and_fail_on_a_missing_one(tmp_path):
    colors = dg.AssetSelection.assets(spanning.paint, spanning.shade).without_checks()
    paint = dg.AssetSelection.assets(spanning.paint).without_checks()
    runs = [(colors, "red"), (colors, "green"), (paint, "blue")]
    readers = dg.AssetSelection.assets(
        spanning.palette, spanning.shades, spanning.tolerant_shades
    ) | dg.AssetSelection.checks(spanning.paint_has_every_color)
    steps = ["palette", "shades", "tolerant_shades", "paint_paint_has_every_color"]

    theirs, ours = both(tmp_path, runs, [(readers, None, steps)])

    paints = [("blue", "blue paint"), ("green", "green paint"), ("red", "red paint")]
    assert theirs == {
        ("palette", None): ("success", paints),
        ("shades", None): ("failure", ("DagsterExecutionLoadInputError", "FileNotFoundError")),
        ("tolerant_shades", None): ("success", [("green", 5), ("red", 3)]),
        ("paint_paint_has_every_color", None): ("success", True),
    }
    # The same values; the same failure, a FileNotFoundError that says which partition.
    load_error = ("failure", ("DagsterExecutionLoadInputError", "AssetPartitionNotFoundError"))
    assert ours == theirs | {("shades", None): load_error}
    assert issubclass(AssetPartitionNotFoundError, FileNotFoundError)


def test_partition_mappings_onto_several_upstream_partitions(tmp_path):
    # Days 1 to 8: the first week whole, the second with one day; regions but west.
    days = [
        (dg.AssetSelection.assets(spanning.day), d) for d in spanning.DAILY.get_partition_keys()
    ]
    regions = [(dg.AssetSelection.assets(spanning.region), r) for r in ("north", "south", "east")]
    weeks = dg.AssetSelection.assets(spanning.week, spanning.last_day_of_week)
    sides = dg.AssetSelection.assets(spanning.side)

    theirs, ours = both(
        tmp_path,
        days[:8] + regions,
        [
            (weeks, "2024-01-01", ["week", "last_day_of_week"]),
            (sides, "north_south", ["side"]),
            (weeks, "2024-01-08", ["week"]),
            (sides, "east_west", ["side"]),
        ],
    )

    missing = ("failure", ("DagsterExecutionLoadInputError", "FileNotFoundError"))
    assert theirs == {
        ("week", "2024-01-01"): ("success", [(f"2024-01-0{d}", d) for d in range(1, 8)]),
        ("last_day_of_week", "2024-01-01"): ("success", 7),
        ("side", "north_south"): ("success", [("north", "NORTH"), ("south", "SOUTH")]),
        ("week", "2024-01-08"): missing,
        ("side", "east_west"): missing,
    }
    ours_missing = ("failure", ("DagsterExecutionLoadInputError", "AssetPartitionNotFoundError"))
    assert ours == theirs | {
        ("week", "2024-01-08"): ours_missing,
        ("side", "east_west"): ours_missing,
    }


def test_the_missing_partition_is_named_in_one_sentence(tmp_path):
    storage = FilesystemStorage(str(tmp_path))
    ours = intermediate_io_manager(IntermediateIOManager(storage))
    materialize(ours, dg.AssetSelection.assets(spanning.shade).without_checks(), "red")

    result = materialize(ours, dg.AssetSelection.assets(spanning.shades))

    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    cause = failure.event_specific_data.error.cause
    assert cause.message.strip().endswith(
        "partition 'green' of asset 'shade' was never materialized: there is no copy of it at "
        f"'{storage.uri(storage.key('assets', 'shade', 'green'))}'; materialize that partition "
        "first (run its DAG for it), or give the input metadata allow_missing_partitions=True."
    )


def test_the_worker_loads_a_weeks_days_as_an_airflow_task_runs_it(tmp_path):
    """The weekly step of a DAG run for partition 2024-01-01, by the real worker, after the daily
    DAG's runs kept each day in the storage."""
    storage = FilesystemStorage(str(tmp_path))
    ours = intermediate_io_manager(IntermediateIOManager(storage))
    for day in spanning.DAILY.get_partition_keys()[:7]:
        assert materialize(ours, dg.AssetSelection.assets(spanning.day), day).success
    run_id = "3f2b1c4d-5e6f-5a7b-8c9d-0e1f2a3b4c5d"
    request = StepRequest(
        code_location=CodeLocation(python_file=str(JOBS / "semantics" / "spanning.py")),
        job_name="weeks",
        step_key="week",
        run_id=run_id,
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
        partition_key="2024-01-01",
    )
    env = {**os.environ, REQUEST_ENV_VAR: request.to_json()}
    done = subprocess.run([CLI, "execute-step"], env=env, capture_output=True, text=True)

    assert done.returncode == 0, done.stdout[-2000:]
    week = pickle.loads((tmp_path / run_id / "week" / "result").read_bytes())
    assert week == [(f"2024-01-0{d}", d) for d in range(1, 8)]
