"""The wire: JSON round trips and the run id shared by a DAG run's tasks."""

import uuid

import attrs
import pytest

from dagster_airflow.errors import ConfigurationError
from dagster_airflow.model import (
    NAMESPACE_ENV_VAR,
    RUN_ID_NAMESPACE,
    CodeLocation,
    RunnerSpec,
    StepRequest,
    StorageSpec,
    TaskRef,
    dagster_run_id,
)
from dagster_airflow.step_result import StepError, StepEvent


def test_step_request_round_trips_through_json():
    request = StepRequest(
        code_location=CodeLocation(module_name="jobs", attribute="defs", working_directory="/app"),
        job_name="demo",
        step_key="count_letters",
        run_id="6f0c6d3e-51f7-5a0c-8e6f-4b5d3b0b2f1a",
        run_config={"ops": {"a": {"config": {"n": 1}}}},
        storage=StorageSpec("s3", {"bucket": "b", "prefix": "p"}),
        attempt=2,
        task=TaskRef("dag", "count_letters", "manual__1", -1, 2),
    )
    assert StepRequest.from_json(request.to_json()) == request


def test_step_event_round_trips_and_other_lines_are_output():
    event = StepEvent(
        "STEP_FAILURE",
        "failed",
        step_key="boom",
        error=StepError("DagsterError", "outer", cause=StepError("ValueError", "inner", "tb")),
    )
    assert StepEvent.from_line(event.to_json()) == event
    assert StepEvent.from_line('{"some": "json the op printed"}') is None
    assert StepEvent.from_line("plain text") is None
    assert event.error.summary() == "DagsterError: outer\n  caused by ValueError: inner"


def test_materialization_check_and_hook_events_round_trip():
    events = [
        StepEvent(
            "ASSET_MATERIALIZATION",
            step_key="cleaned",
            asset_key="warehouse/cleaned",
            partition="2026-01-01",
            metadata={"rows": 3, "path": "/tmp/x", "nested": {"a": [1, 2]}},
        ),
        # passed=False and an empty metadata mapping survive: only None and "" are left out.
        StepEvent(
            "ASSET_CHECK_EVALUATION",
            step_key="cleaned_has_no_zero",
            asset_key="cleaned",
            check_name="has_no_zero",
            passed=False,
            severity="WARN",
            metadata={},
        ),
        StepEvent("HOOK_COMPLETED", "done", step_key="op", hook_name="record_success"),
    ]
    for event in events:
        assert StepEvent.from_line(event.to_json()) == event
    assert '"passed": false' in events[1].to_json()


def test_run_id_is_shared_by_a_dag_run_and_differs_across_runs():
    first = dagster_run_id("demo", "manual__2026-01-01T00:00:00+00:00")
    assert first == dagster_run_id("demo", "manual__2026-01-01T00:00:00+00:00")
    assert first != dagster_run_id("demo", "manual__2026-01-02T00:00:00+00:00")
    assert first != dagster_run_id("other_dag", "manual__2026-01-01T00:00:00+00:00")


def test_code_location_needs_exactly_one_target():
    with pytest.raises(ConfigurationError, match="exactly one of python_file"):
        CodeLocation(python_file="a.py", module_name="a")
    with pytest.raises(ConfigurationError, match="unknown keys \\['path'\\]"):
        CodeLocation.from_dict({"path": "a.py"})


def test_backend_spec_accepts_a_name_or_a_mapping():
    assert RunnerSpec.from_value("docker") == RunnerSpec("docker")
    assert RunnerSpec.from_value({"name": "docker", "image": "x"}) == RunnerSpec(
        "docker", {"image": "x"}
    )
    with pytest.raises(ConfigurationError, match="runner \\{'image': 'x'\\} has no 'name'"):
        RunnerSpec.from_value({"image": "x"})


def test_a_namespace_keeps_two_deployments_runs_apart(monkeypatch):
    """docs/storage.md: staging and production share a prefix and run the same DAG ids."""
    scheduled = "scheduled__2026-12-01T00:00:00+00:00"
    monkeypatch.delenv(NAMESPACE_ENV_VAR, raising=False)
    unset = dagster_run_id("demo", scheduled)
    # Without a namespace, the id is the one every earlier version derived.
    assert unset == str(uuid.uuid5(RUN_ID_NAMESPACE, f"demo\n{scheduled}"))
    monkeypatch.setenv(NAMESPACE_ENV_VAR, "staging")
    staging = dagster_run_id("demo", scheduled)
    monkeypatch.setenv(NAMESPACE_ENV_VAR, "production")
    production = dagster_run_id("demo", scheduled)
    assert len({unset, staging, production}) == 3
    assert dagster_run_id("demo", scheduled, namespace="staging") == staging
    assert dagster_run_id("demo", scheduled, namespace="") == unset


def test_retry_fields_round_trip_and_the_previous_attempts_come_from_the_try():
    request = StepRequest(
        code_location=CodeLocation(module_name="jobs"),
        job_name="demo",
        step_key="flaky",
        run_id="6f0c6d3e-51f7-5a0c-8e6f-4b5d3b0b2f1a",
        attempt=5,
        retry_number=1,
    )
    assert StepRequest.from_json(request.to_json()) == request
    assert request.previous_attempts == 1
    # A request from before retry numbers: the try number minus one.
    assert StepRequest.from_json(request.to_json().replace('"retry_number": 1', '"x": 0')) == (
        attrs.evolve(request, retry_number=None)
    )
    assert attrs.evolve(request, retry_number=None).previous_attempts == 4
    event = StepEvent("STEP_UP_FOR_RETRY", step_key="flaky", seconds_to_wait=0.6, attempt=2)
    assert StepEvent.from_line(event.to_json()) == event


def test_what_a_step_answers_is_still_importable_from_model():
    """Runners outside the package import StepResult, StepEvent, the statuses and exit codes from
    dagster_airflow.model (docs/plugins.md did so): they are step_result's own objects there."""
    import dagster_airflow.model as model
    import dagster_airflow.step_result as step_result

    names = ["StepError", "StepEvent", "StepResult", "SUCCESS", "FAILURE", "SKIPPED"]
    names += ["UP_FOR_RETRY", "EXIT_SUCCESS", "EXIT_FAILURE", "EXIT_NO_RETRY", "EXIT_UP_FOR_RETRY"]
    names += ["TIMEOUT", "STOPPED", "LOST", "NEVER_STARTED"]
    for name in names:
        assert getattr(model, name) is getattr(step_result, name), name
