"""What a task does with the DAG's ENVIRONMENT before its step starts: every variable provided,
each a name and a string, and none for a runner whose steps read their own environment."""

from __future__ import annotations

import pytest

from dagster_airflow.environment import step_environment, unprovided_sentence
from dagster_airflow.errors import ConfigurationError
from dagster_airflow.operator import JOB_WIDE, DagsterOperator
from dagster_airflow.runners.graphql import GraphQLRunner
from dagster_airflow.runners.subprocess import SubprocessRunner
from dagster_airflow.task.context import job_environment
from tests.conftest import ROOT

TROUBLESHOOTING = (ROOT / "docs" / "troubleshooting.md").read_text()


def test_a_filled_environment_is_handed_over_as_it_rendered():
    env = {"WAREHOUSE_PASSWORD": "rendered-secret", "REGION": "eu-west-1"}
    assert job_environment(env, "warehouse_job", SubprocessRunner) == env
    assert job_environment(None, "warehouse_job", GraphQLRunner) == {}


def test_every_variable_nothing_provides_is_named_in_one_sentence():
    env = {"WAREHOUSE_PASSWORD": None, "REGION": "eu-west-1", "API_TOKEN": None}
    with pytest.raises(ConfigurationError) as raised:
        step_environment(env, "warehouse_job")
    assert str(raised.value) == unprovided_sentence(
        ["WAREHOUSE_PASSWORD", "API_TOKEN"], "warehouse_job"
    )
    assert str(raised.value).startswith(
        "job 'warehouse_job' reads the variables 'WAREHOUSE_PASSWORD', 'API_TOKEN' (a resource's"
    )
    assert "--env WAREHOUSE_PASSWORD=..." in str(raised.value)


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"MY-VAR": "x"}, "ENVIRONMENT in the DAG file names the variable 'MY-VAR', which is not"),
        (
            {"PORT": 5432},
            "ENVIRONMENT['PORT'] in the DAG file must be a string without NUL (or "
            "an Airflow template that renders one), got int; quote it in the DAG file.",
        ),
        (["WAREHOUSE_PASSWORD"], "the DAG's ENVIRONMENT must be a mapping of variable names"),
    ],
    ids=["name", "not a string", "not a mapping"],
)
def test_an_environment_edited_into_what_no_process_can_hold_is_one_sentence(environment, message):
    with pytest.raises(ConfigurationError) as raised:
        step_environment(environment, "warehouse_job")
    assert str(raised.value).startswith(message)


def test_a_value_that_renders_nul_is_refused_without_showing_it():
    with pytest.raises(ConfigurationError) as raised:
        step_environment({"WAREHOUSE_PASSWORD": "sec\0ret-value"}, "warehouse_job")
    assert "got a string holding NUL" in str(raised.value)
    assert "ret-value" not in str(raised.value)


def test_the_graphql_runner_takes_no_environment():
    with pytest.raises(ConfigurationError) as raised:
        job_environment({"WAREHOUSE_PASSWORD": "x"}, "warehouse_job", GraphQLRunner)
    message = str(raised.value)
    assert message.startswith("the graphql runner's steps run on a system that reads its own")
    assert message in TROUBLESHOOTING.replace("`task 'connect': ", "`")


def test_a_task_takes_the_environment_from_the_dags_default_args_as_a_template_field():
    from airflow.sdk import DAG

    environment = {"WAREHOUSE_PASSWORD": "{{ conn.warehouse.password }}"}
    with DAG("env_dag", default_args={"environment": environment}, schedule=None):
        task = DagsterOperator(task_id="connect", job_name="j", code_location={"python_file": "x"})
    assert "environment" in JOB_WIDE and "environment" in DagsterOperator.template_fields
    assert task.environment is None  # kept once, in the DAG's default args
    assert task.setting("environment") == environment
