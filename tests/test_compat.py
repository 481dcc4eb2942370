"""The support table of docs/install.md says what the last `make test-compat` results say
(compat/results), written deterministically; the pins and the compat modules agree with the
versions it proves. The runs themselves are `make test-compat` (docs/install.md), not the suite."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "compat"))

import table  # noqa: E402
import versions  # noqa: E402


def test_the_docs_table_is_the_one_the_results_make():
    text = table.DOC.read_text()
    assert table.replaced(text, table.render(table.load_results())) == text, (
        "docs/install.md's support table is stale: run python compat/table.py"
    )


def test_the_table_is_the_same_whatever_order_the_results_are_read_in(tmp_path):
    results = table.load_results()
    assert table.render(dict(reversed(list(results.items())))) == table.render(results)
    for path in sorted(table.RESULTS.glob("*.json")):
        shutil.copy(path, tmp_path / path.name)
    assert table.render(table.load_results(tmp_path)) == table.render(results)


def test_a_failed_check_and_a_combination_never_run_show_in_the_table():
    result = {
        "airflow": "3.1.8",
        "dagster": "1.12.22",
        "passed": False,
        "checks": [{"check": "retries", "passed": False}, {"check": "fan-in", "passed": True}],
    }
    rows = table.render({"airflow-3.1_dagster-1.12": result}).splitlines()

    assert rows[2].startswith("| 3.1.8 | 1.12.22 | **fails** | ok | **fails** | not run |")
    assert rows[3].startswith("| 3.1 | 1.13 | not run |")
    assert len(rows) == 2 + len(versions.COMBINATIONS)


def test_every_result_is_of_a_supported_combination_and_names_its_versions():
    names = {versions.combination_name(a, d) for a, d in versions.COMBINATIONS}
    for name, result in table.load_results().items():
        assert name in names
        assert result["airflow"] == versions.AIRFLOW[result["airflow_minor"]]
        assert result["dagster"] == versions.DAGSTER[result["dagster_minor"]]
        assert {c["check"] for c in result["checks"]} == set(versions.CHECKS), json.dumps(result)


@pytest.mark.parametrize(
    ("side", "package", "pins"),
    [("airflow", "apache-airflow", versions.AIRFLOW), ("dagster", "dagster", versions.DAGSTER)],
)
def test_each_constraints_file_pins_the_newest_patch_of_its_minor(side, package, pins):
    for minor, patch in pins.items():
        lines = (ROOT / "compat" / f"constraints-{side}-{minor}.txt").read_text().splitlines()
        assert f"{package}=={patch}" in lines


def test_the_compat_modules_name_what_the_installed_versions_have():
    """On the suite's Airflow 3.3 the operator gets the per-task retry policy and the DAG file's
    CronTriggerTimetable is the SDK's; the Dagster module's minors are the ones proven."""
    from airflow.sdk import CronTriggerTimetable

    from dagster_airflow import CronTriggerTimetable as ours
    from dagster_airflow.job.dagster_compat import SUPPORTED_MINORS
    from dagster_airflow.task.airflow_compat import HAS_RETRY_POLICY

    assert HAS_RETRY_POLICY
    assert ours is CronTriggerTimetable
    assert tuple(versions.DAGSTER) == SUPPORTED_MINORS
