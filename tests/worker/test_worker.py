"""`dagster-airflow execute-step`, the worker, as a runner starts it."""

from __future__ import annotations

import json
import os
import pickle
import subprocess

import attrs
import pytest

from dagster_airflow.model import REQUEST_ENV_VAR, CodeLocation, StepRequest, StorageSpec
from dagster_airflow.step_result import StepEvent
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


def test_stored_outputs_have_their_type_size_and_a_short_preview_in_the_event_log(tmp_path):
    """What the step view shows of an output comes from the worker, which has the value in hand:
    a reader never needs to unpickle it."""
    done = execute(
        StepRequest(
            code_location=CodeLocation(python_file=str(JOBS / "step_view.py")),
            job_name="view_job",
            step_key="words",
            run_id=RUN_ID,
            run_config={"ops": {"trap": {"config": {"marker": str(tmp_path / "unpickled")}}}},
            storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
            partition_key="north",
        )
    )
    assert done.returncode == 0, done.stdout + done.stderr
    log = (tmp_path / RUN_ID / "words" / "events.jsonl").read_text().splitlines()
    found = [StepEvent.from_line(line) for line in log]
    by_type = {e.event_type: e for e in found if e.output_name in (None, "result")}
    stored = by_type["HANDLED_OUTPUT"]
    data = (tmp_path / RUN_ID / "words" / "result").read_bytes()
    assert stored.metadata["type"] == "list"
    assert stored.metadata["size"] == len(data)
    words = pickle.loads(data)
    assert len(words) == 100
    # reprlib's cut: the first 20 words, then "..."; never the whole value.
    assert stored.metadata["preview"] == repr(words[:20])[:-1] + ", ...]"
    assert by_type["STEP_OUTPUT"].metadata == {"count": 100}  # the op's own output metadata
    materialized = by_type["ASSET_MATERIALIZATION"]
    assert (materialized.asset_key, materialized.partition) == ("words", "north")


FINALS = ("STEP_SUCCESS", "STEP_FAILURE", "STEP_UP_FOR_RETRY", "STEP_SKIPPED")


def outcome_of(lines: str | list[dict]) -> dict:
    """The event that says how the step ended (hook events may follow it)."""
    if isinstance(lines, str):
        lines = [json.loads(line) for line in lines.splitlines() if line]
    return [e for e in lines if e["dagster_airflow_event"] in FINALS][-1]


def retries_request(tmp_path, job_name: str, step_key: str, attempt: int, **kwargs) -> StepRequest:
    record = {"resources": {"record": {"config": {"path": str(tmp_path / "record.txt")}}}}
    return StepRequest(
        code_location=CodeLocation(python_file=str(JOBS / "retries.py")),
        job_name=job_name,
        step_key=step_key,
        run_id=RUN_ID,
        run_config=record,
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
        attempt=attempt,
        **kwargs,
    )


def test_each_attempt_of_a_retried_step_is_one_run_of_the_worker(tmp_path):
    """RetryPolicy(max_retries=3, delay=0.2, EXPONENTIAL) on an op that fails twice: attempts 1
    and 2 end up for retry with Dagster's delays, attempt 3 succeeds, as in Dagster's own run."""
    outcomes = []
    for attempt in (1, 2, 3):
        done = execute(retries_request(tmp_path, "retry_policies", "flaky_twice", attempt))
        lines = [json.loads(line) for line in done.stdout.splitlines() if line]
        outcome = outcome_of(lines)
        outcomes.append((done.returncode, outcome["dagster_airflow_event"]))
        if attempt < 3:
            # Dagster's delay for this retry: delay * (2**attempt - 1).
            assert outcome["seconds_to_wait"] == pytest.approx(0.2 * (2**attempt - 1))
            assert outcome["error"]["cause"]["class_name"] == "ValueError"
        assert all(line["attempt"] == attempt for line in lines)
    assert outcomes == [(3, "STEP_UP_FOR_RETRY"), (3, "STEP_UP_FOR_RETRY"), (0, "STEP_SUCCESS")]
    # context.retry_number is the Airflow try minus one; the success hook fired once, at the end.
    assert (tmp_path / "record.txt").read_text().splitlines() == [
        "attempt flaky_twice 0",
        "attempt flaky_twice 1",
        "attempt flaky_twice 2",
        "success_hook flaky_twice",
    ]
    # One event log for the step, every attempt in it, in order.
    log = tmp_path / RUN_ID / "flaky_twice" / "events.jsonl"
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["attempt"] for e in logged] == sorted(e["attempt"] for e in logged)
    assert {e["attempt"] for e in logged} == {1, 2, 3}
    finals = [e["dagster_airflow_event"] for e in logged if e["dagster_airflow_event"] in FINALS]
    assert finals == ["STEP_UP_FOR_RETRY", "STEP_UP_FOR_RETRY", "STEP_SUCCESS"]


def test_an_attempt_run_again_replaces_its_own_lines_in_the_event_log(tmp_path):
    for attempt in (1, 1):
        execute(retries_request(tmp_path, "retry_policies", "flaky_twice", attempt))
    log = tmp_path / RUN_ID / "flaky_twice" / "events.jsonl"
    kinds = [json.loads(line)["dagster_airflow_event"] for line in log.read_text().splitlines()]
    assert kinds.count("STEP_UP_FOR_RETRY") == 1


def test_a_failure_dagster_will_not_retry_exits_two_and_one_airflow_may_retry_exits_one(tmp_path):
    # The policy's last attempt: Dagster's decision is final, so the task must fail at once.
    done = execute(retries_request(tmp_path, "retry_policies", "always_fails", 2))
    assert done.returncode == 2
    failure = outcome_of(done.stdout)
    assert failure["error"]["message"].startswith("Exceeded max_retries of 1")
    assert failure["error"]["cause"]["message"] == "always_fails fails on attempt 1"
    # Failure(allow_retries=False) under a policy: final on the first attempt.
    assert execute(retries_request(tmp_path, "retry_policies", "refuses_retry", 1)).returncode == 2
    # No policy: Dagster does not retry it, and Airflow's own retries (if the user set any) may.
    done = execute(retries_request(tmp_path, "retry_requested", "fails_without_policy", 1))
    assert done.returncode == 1
    assert (tmp_path / "record.txt").read_text().splitlines() == [
        "attempt always_fails 1",
        "failure_hook always_fails",
        "attempt refuses_retry 0",
        "failure_hook refuses_retry",
        "attempt fails_without_policy 0",
        "failure_hook fails_without_policy",
    ]


def test_retry_requested_without_a_policy_is_up_for_retry_and_never_disabled(tmp_path):
    done = execute(retries_request(tmp_path, "retry_requested", "requests_retry", 1))
    assert done.returncode == 3
    outcome = outcome_of(done.stdout)
    assert outcome["dagster_airflow_event"] == "STEP_UP_FOR_RETRY"
    assert outcome["seconds_to_wait"] == 0.2
    assert "retries are disabled" not in done.stdout
    # The request's retry number (the tries since the task's last clear) wins over the try.
    cleared = retries_request(tmp_path, "retry_requested", "requests_retry", 7, retry_number=2)
    done = execute(cleared)
    assert done.returncode == 0
    assert (tmp_path / "record.txt").read_text().splitlines()[-2:] == [
        "attempt requests_retry 2",
        "success_hook requests_retry",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"step_key": "no_such_step"}, "job 'retry_policies' has no step 'no_such_step'"),
        ({"run_config": {"ops": {"nope": {}}}}, "configures op 'nope', which job 'retry_policies'"),
        ({"storage": StorageSpec("nowhere")}, "storage 'nowhere' is not available"),
    ],
    ids=["unknown-step", "invalid-run-config", "unknown-storage"],
)
def test_a_failure_no_retry_can_fix_exits_two(tmp_path, change, message):
    request = attrs.evolve(retries_request(tmp_path, "retry_policies", "flaky_twice", 1), **change)
    done = execute(request)
    assert done.returncode == 2, done.stdout
    assert message in outcome_of(done.stdout)["error"]["message"]


PARTITIONS = {"static_partitioned": "south", "daily_partitioned": "2024-01-02"}


@pytest.mark.parametrize(
    ("job_name", "run_config", "expected"),
    [
        ("mapped", {"word": "hey", "times": 2}, "heyhey"),
        ("default_config", {}, "xyzxyzxyz"),
        ("pythonic_defaults", {}, "abab"),
        # A partitioned config's run names its partition (docs/scheduling.md): Dagster's run of
        # that partition is the oracle.
        ("static_partitioned", {}, "south"),
        ("daily_partitioned", {}, "20240102"),
    ],
)
def test_jobs_whose_config_is_mapped_or_defaulted_run_as_in_dagster(
    tmp_path, job_name, run_config, expected
):
    import dagster as dg

    from tests.jobs import config_mapping

    request = StepRequest(
        code_location=CodeLocation(python_file=str(JOBS / "config_mapping.py")),
        job_name=job_name,
        step_key="repeat",
        run_id=RUN_ID,
        run_config=run_config,
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
        partition_key=PARTITIONS.get(job_name),
    )
    done = execute(request)
    assert done.returncode == 0, done.stdout
    # Every line is an event: Dagster's console logger printed nothing a second time.
    assert done.stderr == ""
    assert all(line.startswith('{"dagster_airflow_event"') for line in done.stdout.splitlines())
    ours = pickle.loads((tmp_path / RUN_ID / "repeat" / "result").read_bytes())
    job = getattr(config_mapping, job_name)
    assert isinstance(job, dg.JobDefinition)
    dagster = job.execute_in_process(
        run_config=run_config, partition_key=PARTITIONS.get(job_name)
    ).output_for_node("repeat")
    assert ours == expected == dagster
