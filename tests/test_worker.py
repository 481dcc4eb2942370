"""`dagster-airflow execute-step`, the worker, as a runner starts it."""

from __future__ import annotations

import json
import os
import subprocess

from dagster_airflow.model import (
    REQUEST_ENV_VAR,
    CodeLocation,
    StepEvent,
    StepRequest,
    StorageSpec,
)
from tests.conftest import CLI, JOBS

RUN_ID = "3f2b1c4d-5e6f-5a7b-8c9d-0e1f2a3b4c5d"


def execute(request: StepRequest) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, "execute-step"],
        env={**os.environ, REQUEST_ENV_VAR: request.to_json()},
        capture_output=True,
        text=True,
    )


def events(stdout: str) -> list[str]:
    return [json.loads(line)["dagster_airflow_event"] for line in stdout.splitlines() if line]


def test_exit_code_zero_and_atexit_handlers_of_the_users_code_still_run(tmp_path):
    marker = tmp_path / "marker"
    request = StepRequest(
        code_location=CodeLocation(python_file=str(JOBS / "atexit_job.py")),
        job_name="cleanup",
        step_key="register_cleanup",
        run_id=RUN_ID,
        run_config={"ops": {"register_cleanup": {"config": {"marker": str(marker)}}}},
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
    )
    done = execute(request)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "STEP_SUCCESS" in events(done.stdout)
    assert marker.read_text() == "cleaned up"
    log = tmp_path / RUN_ID / "register_cleanup" / "events.jsonl"
    assert "STEP_SUCCESS" in log.read_text()


def test_a_failed_step_exits_one_with_its_error_in_the_event_log(tmp_path):
    request = StepRequest(
        code_location=CodeLocation(python_file=str(JOBS / "trouble.py")),
        job_name="trouble",
        step_key="boom",
        run_id=RUN_ID,
        run_config={"ops": {"sleepy": {"config": {"pid_file": "-", "seconds": 0}}}},
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
    )
    done = execute(request)
    assert done.returncode == 1
    # Its upstream never ran in this run: a clear error, not a FileNotFoundError from pickle.
    failure = [json.loads(line) for line in done.stdout.splitlines()][-1]
    assert failure["dagster_airflow_event"] == "STEP_FAILURE"
    assert (
        "input 'value' of step 'boom' needs output 'result' of step 'fine', which is not at"
        in failure["error"]["message"]
    )
    assert "run the upstream task in this DAG run first" in failure["error"]["message"]


def test_a_bad_request_exits_two_with_one_sentence(tmp_path):
    done = subprocess.run(
        [CLI, "execute-step"],
        env={**os.environ, REQUEST_ENV_VAR: "{not json"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stdout.startswith("dagster-airflow execute-step: a step request must be JSON")


def test_materializations_and_asset_checks_are_in_the_event_log(tmp_path):
    def run_step(step_key: str) -> list[StepEvent]:
        done = execute(
            StepRequest(
                code_location=CodeLocation(python_file=str(JOBS / "semantics" / "assets.py")),
                job_name="asset_checks_job",
                step_key=step_key,
                run_id=RUN_ID,
                storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
            )
        )
        assert done.returncode == 0, done.stdout + done.stderr
        log = (tmp_path / RUN_ID / step_key / "events.jsonl").read_text().splitlines()
        return [StepEvent.from_line(line) for line in log]

    run_step("raw_numbers")
    (materialized,) = [e for e in run_step("cleaned") if e.event_type == "ASSET_MATERIALIZATION"]
    assert (materialized.asset_key, materialized.partition) == ("cleaned", None)
    assert materialized.metadata["uri"] == str(tmp_path / RUN_ID / "cleaned" / "result")
    (check,) = [
        e
        for e in run_step("cleaned_cleaned_has_no_zero")
        if e.event_type == "ASSET_CHECK_EVALUATION"
    ]
    assert (check.asset_key, check.check_name, check.passed, check.severity) == (
        "cleaned",
        "cleaned_has_no_zero",
        False,
        "WARN",
    )
