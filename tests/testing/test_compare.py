"""The comparison kit itself: it names each kind of difference in one line, maps Airflow's task
instances (mapped ones by their label) to Dagster's steps, and catches a real difference between
a job's Airflow run and Dagster's own (the CLI form, exit status 1)."""

from __future__ import annotations

import pickle
import re
import shlex

import pytest

from dagster_airflow.errors import ConfigurationError
from dagster_airflow.model import CodeLocation, dagster_run_id
from dagster_airflow.step_result import StepEvent
from dagster_airflow.storage.filesystem import FilesystemStorage
from dagster_airflow.testing.airflow_home import TaskInstanceRow
from dagster_airflow.testing.compare import (
    Comparison,
    RunRecord,
    StepRecord,
    _mapping_key,
    airflow_record,
    compare_job,
    differences,
)
from tests.conftest import ROOT, run_cli


def run(side: str, *steps: StepRecord) -> RunRecord:
    return RunRecord(side, {s.key: s for s in steps})


def hook(name: str, kind: str = "HOOK_COMPLETED") -> StepEvent:
    return StepEvent(kind, step_key="op", hook_name=name)


def test_matching_runs_have_no_difference():
    steps = [StepRecord("op", "success", 1, {"result": [1, 2]}, (hook("h"),))]
    airflow, dagster = run("Airflow", *steps), run("Dagster", *steps)
    assert differences(airflow, dagster) == []
    report = Comparison("job", (), airflow, dagster)
    assert report.matches
    assert str(report) == (
        "job 'job': Airflow and Dagster agree on all 1 steps "
        "(outcomes, attempts, outputs, hooks, materializations, asset checks)."
    )


def test_each_kind_of_difference_is_one_line():
    materialized = StepEvent("ASSET_MATERIALIZATION", asset_key="a/b", partition="p1")
    check = StepEvent(
        "ASSET_CHECK_EVALUATION", asset_key="a/b", check_name="c", passed=False, severity="WARN"
    )
    airflow = run(
        "Airflow",
        StepRecord("sum_fan_in", "success", 1, {"result": 0}),
        StepRecord("flaky", "success", 2, {}, (hook("on_ok"), hook("on_ok"))),
        StepRecord("asset", "failure", 1, {}),
        StepRecord("after", "skipped", 0),
    )
    dagster = run(
        "Dagster",
        StepRecord("sum_fan_in", "success", 1, {"result": 10}),
        StepRecord("flaky", "success", 3, {"result": 1}, (hook("on_ok"),)),
        StepRecord("asset", "failure", 1, {}, (materialized, check)),
        StepRecord("after", "upstream_failed", 0),
        StepRecord("only_dagster", "success", 1),
    )
    assert differences(airflow, dagster) == [
        "step 'after': skipped under Airflow, upstream_failed under Dagster",
        "step 'asset': asset 'a/b' partition 'p1' materialized 0 times under Airflow, "
        "1 under Dagster",
        "step 'asset': check 'c' on asset 'a/b' not evaluated under Airflow, failed (WARN) "
        "under Dagster",
        "step 'flaky': 2 attempts under Airflow, 3 under Dagster",
        "step 'flaky': output 'result' is not written under Airflow, 1 under Dagster",
        "step 'flaky': hook 'on_ok' completed 2 times under Airflow, 1 under Dagster",
        "step 'only_dagster' has no Airflow task (it ended success under Dagster)",
        "step 'sum_fan_in': output 'result' is 0 under Airflow, 10 under Dagster",
    ]


def test_attempts_are_compared_only_for_steps_that_ran():
    # Airflow counts a try for a task its operator skipped; Dagster skips without an attempt.
    airflow = run("Airflow", StepRecord("op", "skipped", 1))
    dagster = run("Dagster", StepRecord("op", "skipped", 0))
    assert differences(airflow, dagster) == []


@pytest.mark.parametrize(
    ("shown", "key"),
    [("piece_3", "piece_3"), ("[piece_3]", "piece_3"), ("op [piece_3]", "piece_3"), (None, None)],
)
def test_a_map_index_label_gives_the_mapping_key(shown, key):
    assert _mapping_key(shown) == key


def test_options_the_comparison_sets_itself_are_refused(tmp_path):
    with pytest.raises(ConfigurationError, match=r"scaffold option '--storage=s3' is set by"):
        compare_job(CodeLocation(python_file="jobs.py"), "job", scaffold_options=["--storage=s3"])


@pytest.mark.airflow
def test_the_cli_reports_a_real_difference_and_exits_1(airflow_home):
    """The command and report docs/semantics.md shows: run, and printed as shown."""
    text = (ROOT / "docs" / "semantics.md").read_text()
    block = re.search(r"```console\n\$ (dagster-airflow compare .*?)\n(.*?)```", text, re.S)
    args = shlex.split(block.group(1))[1:]
    done = run_cli(*args, "--airflow-home", str(airflow_home.path), cwd=ROOT)
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stdout.splitlines() == block.group(2).splitlines()


class RecordedRun:
    """Task instances as Airflow's database holds them after a run (what AirflowHome reads)."""

    def __init__(self, rows: list[TaskInstanceRow]) -> None:
        self.rows = rows

    def task_instances(self, dag_id: str, run_id: str) -> list[TaskInstanceRow]:
        return self.rows


def test_mapped_task_instances_stand_for_the_steps_of_a_dynamic_output(tmp_path):
    storage = FilesystemStorage(str(tmp_path))
    run_id = dagster_run_id("dag", "manual__1")
    storage.put_bytes(storage.key(run_id, "upper[piece_a]", "result"), pickle.dumps("A"))
    storage.put_bytes(storage.key(run_id, "pieces", "result[piece_a]"), pickle.dumps("a"))
    home = RecordedRun(
        [
            TaskInstanceRow("pieces", -1, "success", 1, None),
            TaskInstanceRow("upper", 0, "success", 1, "piece_a"),
            TaskInstanceRow("upper", 1, "failed", 2, "upper [piece_b]"),
            TaskInstanceRow("never_runs", -1, "skipped", 0, None),
            TaskInstanceRow("graph.add_one", 0, "success", 1, None),
            TaskInstanceRow("stray", -1, "success", 1, None),
        ]
    )
    keys = ["pieces", "upper[piece_a]", "upper[piece_b]", "never_runs[?]", "graph.add_one[n1]"]

    record = airflow_record(home, "dag", "manual__1", storage, keys)

    assert {k: (s.outcome, s.attempts) for k, s in record.steps.items()} == {
        "pieces": ("success", 1),
        "upper[piece_a]": ("success", 1),
        "upper[piece_b]": ("failure", 2),
        "never_runs[?]": ("skipped", 0),
    }
    assert record.steps["pieces"].outputs == {"result[piece_a]": "a"}
    assert record.steps["upper[piece_a]"].outputs == {"result": "A"}
    # A map index that shows no key, and a task of no step, are named in the report.
    assert record.unmatched == ("graph.add_one[0]", "stray")
    dagster = RunRecord(
        "Dagster", {k: StepRecord(k, record.steps[k].outcome) for k in record.steps}
    )
    assert differences(record, dagster)[-2:] == [
        "Airflow task 'graph.add_one[0]' stands for no Dagster step",
        "Airflow task 'stray' stands for no Dagster step",
    ]
