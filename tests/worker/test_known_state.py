"""The worker hands each step the run's known state, rebuilt from the storage: every input loads
what Dagster's own execution of the job loads (fan-in, skipped sources, Nothing, dynamic outputs).

Each step runs alone through the real worker (`execute_step`, in this process for speed), one
after another as Airflow would run them; the oracle is Dagster's in-process run of the same job.
"""

from __future__ import annotations

import io
import json
import pickle
import uuid

import pytest

from dagster_airflow.model import CodeLocation, StepRequest, StorageSpec
from dagster_airflow.storage.filesystem import FilesystemStorage
from dagster_airflow.worker.execute import execute_step
from tests.conftest import JOBS

FAN_IN_STEPS = [
    *(f"return_one_{i}" for i in range(10)),
    "sum_ten",
    "some_numbers",
    "plus_ten",
    "sum_partial",
    "sum_none",
    "prepare",
    "report",
]


class Run:
    """One run of a job, step by step through the worker, over a filesystem storage."""

    def __init__(
        self, tmp_path, file: str, job: str, run_config: dict | None = None, dagster_home=None
    ) -> None:
        self.storage = FilesystemStorage(base_dir=str(tmp_path / "storage"))
        self.file, self.job, self.run_config = file, job, run_config or {}
        self.run_id = str(uuid.uuid4())
        self.dagster_home = str(dagster_home) if dagster_home else None

    def step(self, step_key: str) -> tuple[str, str]:
        """(the step's end: STEP_SUCCESS, STEP_FAILURE or STEP_SKIPPED, its message)."""
        request = StepRequest(
            code_location=CodeLocation(python_file=str(JOBS / self.file)),
            job_name=self.job,
            step_key=step_key,
            run_id=self.run_id,
            run_config=self.run_config,
            storage=StorageSpec("filesystem", {"base_dir": str(self.storage.base_dir)}),
            dagster_home=self.dagster_home,
        )
        out = io.StringIO()
        self.exit_code = execute_step(request.to_json(), out)
        events = [json.loads(line) for line in out.getvalue().splitlines() if line]
        ends = ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED")
        last = [e for e in events if e["dagster_airflow_event"] in ends][-1]
        message = last.get("error", {}).get("message") or last.get("message", "")
        return last["dagster_airflow_event"], message

    def steps(self, keys: list[str]) -> dict[str, str]:
        return {key: self.step(key)[0] for key in keys}

    def output(self, step_key: str, name: str = "result"):
        with self.storage.open_read(self.storage.key(self.run_id, step_key, name)) as stream:
            return pickle.load(stream)

    def record(self, step_key: str) -> dict:
        return json.loads(self.storage.get_bytes(f"{self.run_id}/{step_key}/outputs.json"))


def dagster_run(job, run_config: dict | None = None):
    """Dagster's own run of the job: (outputs of its successful steps, skipped step keys)."""
    result = job.execute_in_process(run_config=run_config or {})
    skipped = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SKIPPED"}
    return result, skipped


def test_fan_in_of_ten_sums_ten_and_partial_fan_in_loads_what_was_produced(tmp_path):
    from tests.jobs.fan_in import fan_in

    run = Run(tmp_path, "fan_in.py", "fan_in")
    ends = run.steps(FAN_IN_STEPS)

    reference, dagster_skipped = dagster_run(fan_in)
    # plus_ten_again never starts under Airflow (its upstream task was skipped); the rest is
    # what Dagster did with each step.
    assert {k for k, end in ends.items() if end == "STEP_SKIPPED"} == dagster_skipped - {
        "plus_ten_again"
    }
    assert {k for k, end in ends.items() if end == "STEP_FAILURE"} == set()
    for node in ("sum_ten", "sum_partial", "report"):
        assert run.output(node) == reference.output_for_node(node)
    assert run.output("sum_ten") == 10
    assert run.output("sum_partial") == 14  # 1 + 3 (produced), 10 (sum_ten); 'two' skipped
    assert run.output("report") == "total 14"  # its Nothing input from 'prepare' counts as ready


def test_a_fan_in_source_downstream_of_a_skipped_step_is_skipped_as_in_dagster(tmp_path):
    run = Run(tmp_path, "fan_in.py", "fan_in")
    run.steps(FAN_IN_STEPS[:-4])  # everything up to plus_ten (skipped)
    # plus_ten_again has no record: Airflow skipped it without a worker. Its output is then
    # "not produced", not lost, because the step it depends on was skipped.
    assert run.step("sum_partial")[0] == "STEP_SUCCESS"
    assert run.output("sum_partial") == 14
    assert run.step("sum_none") == (
        "STEP_SKIPPED",
        "none of the 2 sources of fan-in input 'nums' was produced.",
    )
    assert run.record("plus_ten") == {"status": "skipped", "outputs": [], "attempt": 1}


def test_a_skipped_step_is_skipped_in_the_teams_instance_as_in_dagsters_run(tmp_path):
    from dagster import DagsterInstance

    from tests.jobs.fan_in import fan_in

    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("{}\n")  # the instance's defaults: SQLite in the home
    run = Run(tmp_path, "fan_in.py", "fan_in", dagster_home=home)
    messages = {key: run.step(key) for key in ("some_numbers", "plus_ten")}
    _, dagster_skipped = dagster_run(fan_in)
    with DagsterInstance.from_config(str(home)) as instance:
        skipped = {
            entry.step_key: entry.dagster_event.message
            for entry in instance.all_logs(run.run_id)
            if entry.dagster_event and entry.dagster_event.event_type_value == "STEP_SKIPPED"
        }
    assert set(skipped) == dagster_skipped & set(messages) == {"plus_ten"}
    assert skipped == {"plus_ten": messages["plus_ten"][1]}


def test_a_required_fan_in_source_that_is_missing_fails_in_one_sentence(tmp_path):
    run = Run(tmp_path, "fan_in.py", "fan_in")
    run.steps([f"return_one_{i}" for i in range(9)])  # return_one_9 never ran
    end, message = run.step("sum_ten")
    uri = run.storage.uri(f"{run.run_id}/return_one_9/result")
    assert end == "STEP_FAILURE"
    assert message == (
        f"input 'nums' of step 'sum_ten' needs output 'result' of step 'return_one_9', which is "
        f"not at {uri!r}; run the upstream task in this DAG run first."
    )


DYNAMIC_STEPS = [
    "pieces",
    *(f"flaky_upper[piece_{k}]" for k in "ba"),
    *(f"decorate.exclaim[piece_{k}]" for k in "ba"),
    *(f"decorate.double[piece_{k}]" for k in "ba"),
    "join",
    "numbers",
    "square[n3]",
    "square[n1]",
    "total",
    "no_pieces",
    "join_none",
    "maybe_pieces",
    "join_maybe",
]


@pytest.fixture
def dynamic_config(tmp_path) -> dict:
    markers = tmp_path / "markers"
    markers.mkdir()
    (markers / "failed_once_piece_a").write_text("")  # no failing attempt here
    return {"ops": {"flaky_upper": {"config": {"marker_dir": str(markers)}}}}


def test_mapped_steps_and_collects_load_what_dagster_loads_in_its_order(tmp_path, dynamic_config):
    from tests.jobs.dynamic import dynamic

    run = Run(tmp_path, "dynamic.py", "dynamic", dynamic_config)
    ends = run.steps(DYNAMIC_STEPS)

    reference, dagster_skipped = dagster_run(dynamic, dynamic_config)
    assert {k for k, end in ends.items() if end == "STEP_SKIPPED"} == dagster_skipped
    assert dagster_skipped == {"join_maybe"}  # an optional dynamic output that yielded nothing
    assert set(ends.values()) == {"STEP_SUCCESS", "STEP_SKIPPED"}
    for node in ("join", "total", "join_none"):
        assert run.output(node) == reference.output_for_node(node)
    # Yield order (b, a), not the storage's sorted listing.
    assert run.output("join") == "B!B!,A!A!"
    assert run.output("join_none") == ""  # zero keys: the collect gets []
    assert run.record("pieces") == {
        "status": "success",
        "outputs": [["result", "piece_b"], ["result", "piece_a"]],
        "attempt": 1,
    }


def test_a_collect_before_its_dynamic_step_ran_says_which_step_to_run(tmp_path, dynamic_config):
    run = Run(tmp_path, "dynamic.py", "dynamic", dynamic_config)
    end, message = run.step("join")
    uri = run.storage.uri(f"{run.run_id}/pieces/outputs.json")
    assert end == "STEP_FAILURE"
    assert message == (
        f"step 'join' needs the mapping keys that step 'pieces' yields, which are not at "
        f"{uri!r}; run the upstream task in this DAG run first."
    )


def test_a_mapping_key_the_run_did_not_yield_is_refused(tmp_path, dynamic_config):
    run = Run(tmp_path, "dynamic.py", "dynamic", dynamic_config)
    run.step("pieces")
    assert run.step("flaky_upper[piece_z]") == (
        "STEP_FAILURE",
        "step 'flaky_upper[piece_z]' is not a step of this run: output 'result' of step "
        "'pieces' yielded the mapping keys ['piece_b', 'piece_a']; clear the mapped "
        "task together with its upstream task.",
    )


def test_a_step_whose_record_cannot_be_written_fails(tmp_path):
    run = Run(tmp_path, "fan_in.py", "fan_in")
    # A folder where the record goes: the storage cannot commit the record there.
    (tmp_path / "storage" / run.run_id / "return_one_0" / "outputs.json").mkdir(parents=True)
    end, message = run.step("return_one_0")
    assert end == "STEP_FAILURE"
    assert "Is a directory" in message  # the error the step fails with
    assert run.exit_code == 1
