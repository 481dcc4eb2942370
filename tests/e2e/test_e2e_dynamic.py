"""Fan-in and dynamic outputs through a real Airflow 3.3 (`airflow dags test` on SQLite), each job
compared with Dagster's own in-process run: the same step outcomes, outputs and attempts.

Two DAGs keep the run time down: tests/jobs/fan_in.py (ten sources into one sum, sources that
were not produced, a Nothing input) and tests/jobs/dynamic.py (a chain of maps over a graph with
a collect, a second dynamic output, zero keys, an optional dynamic output that yields nothing,
and a mapped op that fails its first attempt for one key).
"""

from __future__ import annotations

import json
import pickle
import sqlite3
from urllib.parse import quote, urlencode

import attrs
import pytest
import yaml

from dagster_airflow.model import dagster_run_id
from dagster_airflow.storage.filesystem import FilesystemStorage
from dagster_airflow.testing.airflow_home import DagRunResult
from tests.conftest import JOBS, scaffold

pytestmark = pytest.mark.airflow


def task_instances(airflow_home, dag_id: str, run_id: str) -> dict[str, tuple[str, int]]:
    """Dagster step key -> (Airflow state, tries) of each task instance of the run; a mapped
    task's instances by the mapping key that the UI shows (its rendered map index)."""
    with sqlite3.connect(airflow_home.path / "airflow.db") as db:
        rows = db.execute(
            "SELECT task_id, map_index, rendered_map_index, state, try_number "
            "FROM task_instance WHERE dag_id = ? AND run_id = ?",
            (dag_id, run_id),
        ).fetchall()
    return {
        f"{task}[{shown}]" if index >= 0 else task: (state, tries)
        for task, index, shown, state, tries in rows
    }


def dagster_outcomes(job, run_config: dict):
    """Dagster's own run: the result, and each step's outcome as Airflow names its states."""
    result = job.execute_in_process(run_config=run_config)
    states = {"STEP_SUCCESS": "success", "STEP_SKIPPED": "skipped", "STEP_FAILURE": "failed"}
    outcomes = {
        e.step_key: states[e.event_type_value]
        for e in result.all_events
        if e.event_type_value in states
    }
    return result, outcomes


@attrs.frozen
class AirflowRun:
    result: DagRunResult
    instances: dict[str, tuple[str, int]]
    storage: FilesystemStorage
    run_id: str  # the Dagster run id

    def output(self, step_key: str):
        with self.storage.open_read(self.storage.key(self.run_id, step_key, "result")) as stream:
            return pickle.load(stream)


def run_dag(airflow_home, tmp_path, job: str, dag_id: str, run_config: dict | None = None):
    storage_dir = tmp_path / "storage"
    args = [job, "-f", str(JOBS / f"{job}.py"), "--dag-id", dag_id]
    if run_config:
        config = tmp_path / "run_config.yml"
        config.write_text(yaml.safe_dump(run_config))
        args += ["-e", str(config)]
    text = scaffold(*args, "--storage-option", f"base_dir={storage_dir}")
    # Retry at once where a task retries (the scaffold's default waits five minutes).
    text = text.replace("datetime.timedelta(minutes=5)", "datetime.timedelta(0)")
    airflow_home.install(text, f"{dag_id}.py")
    result = airflow_home.dags_test(dag_id)
    assert result.succeeded, result.output[-3000:]
    return AirflowRun(
        result,
        task_instances(airflow_home, dag_id, result.run_id),
        FilesystemStorage(base_dir=str(storage_dir)),
        dagster_run_id(dag_id, result.run_id),
    )


def links(airflow_home, dag_id: str, run_id: str, name: str) -> dict[tuple[str, int], str]:
    """(task id, map index) -> the URL of one of its extra links, as Airflow stored it."""
    with sqlite3.connect(airflow_home.path / "airflow.db") as db:
        rows = db.execute(
            "SELECT task_id, map_index, value FROM xcom WHERE dag_id = ? AND run_id = ? "
            "AND key = ?",
            (dag_id, run_id, f"_link_{name}"),
        ).fetchall()
    return {(task, index): json.loads(value) for task, index, value in rows}


def test_fan_in_loads_every_produced_source_as_dagster_does(airflow_home, tmp_path):
    from tests.jobs.fan_in import fan_in

    run = run_dag(airflow_home, tmp_path, "fan_in", "e2e_fan_in")
    result, instances, output = run.result, run.instances, run.output

    reference, outcomes = dagster_outcomes(fan_in, {})
    assert {step: state for step, (state, _) in instances.items()} == outcomes
    assert output("sum_ten") == reference.output_for_node("sum_ten") == 10  # was 0
    assert output("sum_partial") == reference.output_for_node("sum_partial") == 14
    assert output("report") == reference.output_for_node("report") == "total 14"
    assert outcomes["sum_none"] == "skipped"
    assert "none of the 2 sources of fan-in input 'nums' was produced" in result.task_log(
        "sum_none"
    )


def test_dynamic_outputs_run_as_mapped_tasks_as_dagster_runs_them(airflow_home, tmp_path):
    from tests.jobs.dynamic import dynamic

    def config(markers):
        markers.mkdir()
        return {"ops": {"flaky_upper": {"config": {"marker_dir": str(markers)}}}}

    airflow_markers, dagster_markers = tmp_path / "airflow_markers", tmp_path / "dagster_markers"
    run = run_dag(airflow_home, tmp_path, "dynamic", "e2e_dynamic", config(airflow_markers))
    result, instances, output = run.result, run.instances, run.output
    reference, outcomes = dagster_outcomes(dynamic, config(dagster_markers))

    # A map over zero keys is one skipped task instance in Airflow, no step in Dagster.
    no_keys = {"exclaim_none", "double_none", "exclaim_maybe"}
    assert {step: instances[step][0] for step in no_keys} == dict.fromkeys(no_keys, "skipped")
    states = {step: state for step, (state, _) in instances.items() if step not in no_keys}
    assert states == outcomes
    assert outcomes["join_maybe"] == "skipped"  # an optional dynamic output that yielded nothing
    # The mapped tasks show their mapping keys; a collect reads them in Dagster's order (b, a).
    assert {"flaky_upper[piece_b]", "decorate.double[piece_a]", "square[n3]"} <= set(instances)
    for node in ("join", "total", "join_none"):
        assert output(node) == reference.output_for_node(node)
    assert output("join") == "B!B!,A!A!"
    assert output("join_none") == ""
    # The XCom of a dynamic step: its mapping keys in yield order, never the data.
    assert result.xcoms["pieces"] == ["piece_b", "piece_a"]
    assert result.xcoms["no_pieces"] == []
    # One mapped task instance failed its first try and was retried alone, as Dagster retried
    # that one step.
    assert instances["flaky_upper[piece_a]"] == ("success", 2)
    assert instances["flaky_upper[piece_b]"] == ("success", 1)
    for markers in (airflow_markers, dagster_markers):
        attempts = {p.name: len(p.read_text()) for p in markers.glob("attempts_*")}
        assert attempts == {"attempts_piece_a": 2, "attempts_piece_b": 1}
    # Running one map index again by hand reruns that mapping key's Dagster step only.
    index = result.xcoms["pieces"].index("piece_a")
    done = airflow_home.airflow(
        "tasks", "test", "e2e_dynamic", "flaky_upper", result.run_id, "--map-index", str(index)
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Dagster step 'flaky_upper[piece_a]' of job 'dynamic'" in done.stdout + done.stderr
    attempts = {p.name: len(p.read_text()) for p in airflow_markers.glob("attempts_*")}
    assert attempts == {"attempts_piece_a": 3, "attempts_piece_b": 1}

    # Each mapped task instance links to its own try's page of the step view (a filesystem
    # storage's file:// URLs are no links in Airflow's UI).
    def view(task_id: str, map_index: int, try_number: int) -> str:
        path = "/".join(quote(part, safe="") for part in ("e2e_dynamic", result.run_id, task_id))
        query = urlencode({"map_index": map_index, "try_number": try_number})
        return f"/dagster-airflow/steps/{path}?{query}"

    outputs = links(airflow_home, "e2e_dynamic", result.run_id, "StepOutputsLink")
    event_logs = links(airflow_home, "e2e_dynamic", result.run_id, "StepEventLogLink")
    assert outputs[("flaky_upper", index)] == view("flaky_upper", index, 2)
    assert event_logs[("square", 0)] == view("square", 0, 1)
    assert outputs[("pieces", -1)] == view("pieces", -1, 1)
