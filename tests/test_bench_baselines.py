"""The benchmarks compare like with like: the hand-written baseline DAG has exactly the task ids,
edges and schedule of the DAG the scaffold writes for the same synthetic job."""

from __future__ import annotations

import sys

from tests.conftest import ROOT, scaffold
from tests.scaffold.test_scaffold import inspect_dag

sys.path.insert(0, str(ROOT / "bench"))

from dag_files import empty_operator_dag, serialized
from synthetic_job import write_full_job


def test_baseline_dag_matches_the_scaffolded_one(tmp_path):
    job, config = write_full_job(tmp_path, 10)
    ours = tmp_path / "ours.py"
    ours.write_text(scaffold("synthetic_10", "-f", str(job), "-e", str(config)))
    baseline = tmp_path / "baseline.py"
    baseline.write_text(empty_operator_dag(ours.read_text(), serialized(ours)))

    scaffolded, handwritten = inspect_dag(ours), inspect_dag(baseline)

    assert scaffolded["tasks"] == handwritten["tasks"]
    assert len(scaffolded["tasks"]) == 10 and "work" in scaffolded["tasks"]  # the mapped step
    assert scaffolded["edges"] == handwritten["edges"]
    assert len(scaffolded["edges"]) == 9
    assert "CronTriggerTimetable(" in baseline.read_text()
