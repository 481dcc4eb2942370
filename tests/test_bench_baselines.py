"""The benchmarks compare like with like: the hand-written baseline DAG has exactly the task ids
and edges of the DAG the scaffold writes for the same synthetic job."""

from __future__ import annotations

import sys

from tests.conftest import ROOT, scaffold
from tests.test_scaffold import inspect_dag

sys.path.insert(0, str(ROOT / "bench"))

from dag_files import empty_operator_dag
from synthetic_job import write_job


def test_baseline_dag_matches_the_scaffolded_one(tmp_path):
    job = write_job(tmp_path, 10)
    ours = tmp_path / "ours.py"
    ours.write_text(scaffold("synthetic_10", "-f", str(job)))
    baseline = tmp_path / "baseline.py"
    baseline.write_text(empty_operator_dag(10))

    scaffolded, handwritten = inspect_dag(ours), inspect_dag(baseline)

    assert scaffolded["tasks"] == handwritten["tasks"] == [f"step_{i:04d}" for i in range(10)]
    assert scaffolded["edges"] == handwritten["edges"]
    assert len(scaffolded["edges"]) == 9
