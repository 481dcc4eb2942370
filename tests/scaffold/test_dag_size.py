"""A scaffolded DAG keeps the job's schema and run config once, for the DAG: what Airflow stores
for each task does not grow with them (issue 28). Sizes, never times: bench/dag_files.py times
parsing and serializing against EmptyOperator DAGs."""

from __future__ import annotations

import json
import runpy
import sys

import pytest

from tests.conftest import ROOT, scaffold

sys.path.insert(0, str(ROOT / "bench"))

from synthetic_job import write_full_job


@pytest.fixture(scope="module")
def serialized(tmp_path_factory):
    """Airflow's serialization (as the dag-processor stores it) of the scaffolded DAGs of the
    full synthetic job (inputs, config for every op, daily partitions, dynamic mapping) at 10
    and 100 steps: {steps: (dag, serialized)}."""
    from airflow.serialization.serialized_objects import DagSerialization

    folder = tmp_path_factory.mktemp("dag_size")
    found = {}
    for steps in (10, 100):
        job, config = write_full_job(folder, steps)
        path = folder / f"dag_{steps}.py"
        path.write_text(scaffold(f"synthetic_{steps}", "-f", str(job), "-e", str(config)))
        dag = runpy.run_path(str(path))["dag"]
        found[steps] = dag, DagSerialization.to_dict(dag)["dag"]
    return found


def tasks(data: dict) -> dict[str, dict]:
    return {t["__var"]["task_id"]: t["__var"] for t in data["tasks"]}


def test_a_task_serializes_to_the_same_bytes_whatever_the_size_of_the_jobs_config(serialized):
    small, big = tasks(serialized[10][1]), tasks(serialized[100][1])
    # The same step, mapped or not, in a job with ten times the ops, schema and run config.
    for task_id in ("step_0000", "fan_out", "work", "gather"):
        assert json.dumps(small[task_id], sort_keys=True) == json.dumps(
            big[task_id], sort_keys=True
        ), task_id
    for task in big.values():
        assert not {"params", "run_config", "runner", "storage"} & set(task)


def test_the_dag_keeps_the_trigger_form_and_the_run_config_once(serialized):
    dag, data = serialized[100]
    params = dict(data["params"])
    assert set(params) == {"ops", "resources", "partition"}
    ops = params["ops"]
    # The form's default is the scaffolded run config; its schema names every op.
    assert dag.params["ops"]["step_0042"] == {"config": {"factor": 42}}
    assert "step_0042" in json.dumps(ops["schema"])
    # The run config is stored there only: the tasks' run config and schema are the DAG's
    # macros, which Airflow does not store.
    assert json.dumps(data).count('"factor": 42}') == 1
    assert '"factor": 42}' in json.dumps(ops["default"])
    # Every task still runs with the DAG's run config, and conf is validated by the schema.
    assert dag.task_dict["step_0042"].setting("run_config")["ops"]["step_0042"] == {
        "config": {"factor": 42}
    }
    from airflow.sdk.exceptions import ParamValidationError

    form = dag.params.get_param("ops")
    with pytest.raises(ParamValidationError, match="many"):
        form.resolve({"step_0042": {"config": {"factor": "many"}}})
    with pytest.raises(ParamValidationError, match="step_9999"):
        form.resolve({"step_9999": {"config": {"factor": 1}}})
    assert form.resolve({"work": {"config": None}, "step_0007": {"config": {"factor": 1}}})


def test_the_json_grows_with_the_steps_not_with_steps_times_schema(serialized):
    small, big = (len(json.dumps(serialized[n][1])) for n in (10, 100))
    # Ten times the steps: about ten times the bytes (quadratic growth gave about a hundred).
    assert big < 12 * small


def test_a_task_renders_the_dags_run_config_and_runner_and_its_own_override_wins():
    import datetime

    from airflow.sdk import DAG

    from dagster_airflow.operator import DagsterOperator

    default_args = {
        "runner": {"name": "subprocess", "env": {"DAY": "{{ ds }}"}},
        "code_location": {"python_file": "/jobs/job.py"},
        "job_name": "job",
        "run_config": {"ops": {"a": {"config": {"day": "{{ ds }}"}}}},
    }
    with DAG("rendering", start_date=datetime.datetime(2026, 1, 1), default_args=default_args):
        shared = DagsterOperator(task_id="a", step_key="a")
        own = DagsterOperator(task_id="b", step_key="b", run_config={"ops": {"b": {"x": 1}}})
    assert shared.run_config is None  # nothing of its own until it renders
    for task in (shared, own):
        task.render_template_fields({"ds": "2026-02-03"})
    assert shared.run_config == {"ops": {"a": {"config": {"day": "2026-02-03"}}}}
    assert shared.run_config_source == default_args["run_config"]  # which values were templates
    assert shared.runner == {"name": "subprocess", "env": {"DAY": "2026-02-03"}}
    assert own.run_config == {"ops": {"b": {"x": 1}}}
    # The DAG's own values are not touched by a task's rendering.
    assert default_args["runner"]["env"] == {"DAY": "{{ ds }}"}


def test_a_task_serializes_to_about_what_an_empty_operator_does(serialized):
    """Each task's share of what Airflow stores: the extra links, template fields, colours and
    retry policy flag of our operator, and nothing job-wide. An EmptyOperator task of the same
    DAG serializes to about 335 bytes; a guard, so that a new per-task field is a decision."""
    for task_id, task in tasks(serialized[100][1]).items():
        size = len(json.dumps(task))
        # A mapped task also holds its partial arguments and what it expands over.
        assert size <= (870 if task.get("_is_mapped") else 550), (task_id, size, task)


def test_the_whole_dag_serializes_to_a_bounded_size_a_step(serialized):
    """Everything Airflow stores for the 100-step DAG (tasks, trigger form with its run config
    and schema, default_args, docs), per step: 700 bytes when this guard was set (823 while
    default_args held the run config and schema too), 734 with each task's retries for Dagster's
    retry requests and the docs' word on the Dagster instance, against 381 for the EmptyOperator
    DAG of the same shape (bench/dag_files.py measures the ratio)."""
    _, data = serialized[100]
    assert len(json.dumps(data)) <= 750 * 100


def test_the_file_names_a_step_only_where_its_key_is_not_the_task_id(serialized, tmp_path):
    dag, _ = serialized[10]
    # The operator's step_key defaults to its task id; a mapped step keeps its own.
    assert dag.task_dict["step_0003"].step_key == "step_0003"
    assert dag.task_dict["work"].partial_kwargs["step_key"] == "work[?]"


def test_the_schema_checks_op_names_in_linear_time_and_reads_back(serialized):
    from dagster_airflow.job.params import expand_schema

    dag, data = serialized[100]
    names = dag.params.get_param("ops").schema["propertyNames"]
    assert json.dumps(names) in json.dumps(dict(data["params"])["ops"])
    # One pattern, not an enum of 100 names that jsonschema compares one by one.
    assert set(names) == {"pattern"}
    assert "|step_0042|" in names["pattern"]
    schema = {"type": "object", "properties": {"ops": dag.params.get_param("ops").schema}}
    expanded = expand_schema(schema)["properties"]["ops"]
    assert len(expanded["properties"]) == 100
    assert expanded["properties"]["step_0042"]["properties"]["config"]["properties"]["factor"] == {
        "type": "integer"
    }
