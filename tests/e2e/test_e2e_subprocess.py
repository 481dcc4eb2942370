"""The demo and a troublesome job, scaffolded and run through a real Airflow 3.3 on SQLite."""

from __future__ import annotations

import os
import pickle
import re
import time
from pathlib import Path

import pytest
import yaml

from dagster_airflow.model import dagster_run_id
from dagster_airflow.storage.filesystem import FilesystemStorage
from tests.conftest import EXAMPLES, JOBS, scaffold

pytestmark = pytest.mark.airflow


def dagster_in_process(job, run_config: dict, node: str):
    """What Dagster itself computes for the job: the reference our result must equal."""
    return job.execute_in_process(run_config=run_config).output_for_node(node)


def test_demo_runs_end_to_end_and_matches_dagster(airflow_home, tmp_path):
    storage_dir = tmp_path / "storage"
    text = scaffold(
        "demo_pipeline",
        "-f",
        str(EXAMPLES / "demo.py"),
        "-e",
        str(EXAMPLES / "demo.yml"),
        "--dag-id",
        "e2e_demo",
        "--storage-option",
        f"base_dir={storage_dir}",
    )
    airflow_home.install(text, "e2e_demo.py")

    result = airflow_home.dags_test("e2e_demo")

    assert result.succeeded, result.output[-3000:]
    assert result.states == dict.fromkeys(
        ["multiply_the_word", "count_letters", "reverse_word", "count_reversed", "summarize"],
        "success",
    )
    run_id = dagster_run_id("e2e_demo", result.run_id)
    storage = FilesystemStorage(base_dir=str(storage_dir))
    # Each task's XCom is the URI of what it wrote: never the data itself.
    assert result.xcoms["summarize"] == {
        "result": str(storage_dir / run_id / "summarize" / "result")
    }
    with storage.open_read(storage.key(run_id, "summarize", "result")) as stream:
        ours = pickle.load(stream)

    from examples.demo import demo_pipeline

    run_config = yaml.safe_load((EXAMPLES / "demo.yml").read_text())
    assert ours == dagster_in_process(demo_pipeline, run_config, "summarize")
    with storage.open_read(storage.key(run_id, "count_letters", "result")) as stream:
        assert pickle.load(stream) == {"b": 2, "a": 2, "r": 2}
    # The event log of each step sits next to its outputs.
    assert storage.exists(storage.key(run_id, "summarize", "events.jsonl"))

    log = result.task_log("summarize")
    assert f"Loaded input 'counts' from {storage_dir / run_id / 'count_letters' / 'result'}" in log
    assert "Letter counts: {'b': 2, 'a': 2, 'r': 2}" in log
    assert f"Stored output 'result' at {storage_dir / run_id / 'summarize' / 'result'}" in log


def test_failure_skip_and_timeout_behave_as_airflow_users_expect(airflow_home, tmp_path):
    pid_file = tmp_path / "sleepy.pid"
    config = tmp_path / "trouble.yml"
    config.write_text(
        yaml.safe_dump({"ops": {"sleepy": {"config": {"pid_file": str(pid_file), "seconds": 600}}}})
    )
    text = scaffold(
        "trouble",
        "-f",
        str(JOBS / "trouble.py"),
        "-e",
        str(config),
        "--storage-option",
        f"base_dir={tmp_path / 'storage'}",
    )
    # An op without a Dagster retry policy is retried only at Dagster's request: its failure
    # (and the timeout below) is final.
    assert re.search(r"retries=\d", text) is None and '"dagster_retries_only": True' in text
    # What a user edits in the scaffolded file: a timeout on the slow task.
    text = text.replace(
        'DagsterOperator(task_id="sleepy")',
        'DagsterOperator(task_id="sleepy", execution_timeout=datetime.timedelta(seconds=15))',
    )
    airflow_home.install(text, "trouble.py")

    started = time.monotonic()
    result = airflow_home.dags_test("trouble")

    assert time.monotonic() - started < 300, "the timed-out step was not stopped"
    assert not result.succeeded
    assert result.states == {
        "fine": "success",
        "boom": "failed",
        "after_boom": "upstream_failed",
        "maybe": "success",
        "after_produced": "success",
        "after_missing": "skipped",
        "sleepy": "failed",
    }
    boom_log = result.task_log("boom")
    assert "about to fail" in boom_log
    assert "ValueError: the answer is not 41" in boom_log
    # The stack trace points at the user's code, not at ours.
    assert re.search(r'File ".*tests/jobs/trouble.py", line \d+, in boom', boom_log)
    assert "Step 'after_missing' skipped" in result.task_log("after_missing")
    assert "did not produce its optional output 'missing'" in result.task_log("after_missing")
    # The step's process is gone once Airflow has timed the task out.
    pid = int(Path(pid_file).read_text())
    assert not _alive(pid), f"the timed-out step's process {pid} is still running"
    # It said so in one line, with none of the worker's uncaught traceback after it, and it
    # wrote its event log, ending with its failure.
    sleepy_log = result.task_log("sleepy")
    assert "the step was stopped while it ran" in sleepy_log
    assert "dagster._core.errors.DagsterExecutionInterruptedError" not in sleepy_log
    assert "DagsterExecutionInterruptedError stack trace" not in sleepy_log
    run_id = dagster_run_id("trouble", result.run_id)
    events = tmp_path / "storage" / run_id / "sleepy" / "events.jsonl"
    assert '"STEP_FAILURE"' in events.read_text().splitlines()[-1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie no one has reaped yet is dead too.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()
