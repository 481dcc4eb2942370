"""The variables a job's config reads, found without reading them (dagster_airflow.job.environment),
compared with what Dagster itself needs set to run the job."""

from __future__ import annotations

import os

import dagster as dg
import pytest
from dagster._config import source

from dagster_airflow.job.code_location import load_job
from dagster_airflow.job.compile import compile_job
from dagster_airflow.job.environment import reading_environment
from dagster_airflow.model import CodeLocation
from tests.conftest import JOBS, ROOT
from tests.jobs.env_config import RUN_CONFIG

ENV_CONFIG = CodeLocation(python_file=str(JOBS / "env_config.py"))
WAREHOUSE = CodeLocation(python_file=str(ROOT / "tests" / "jobs" / "project" / "warehouse.py"))
VALUES = {"API_TOKEN": "tok-1234", "DB_PORT": "5432", "VERBOSE": "true"}


@pytest.fixture
def unset(monkeypatch):
    for name in [*VALUES, "WAREHOUSE_PASSWORD"]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_resources_env_var_is_found_with_the_variable_unset(unset):
    graph = compile_job(WAREHOUSE, "warehouse_job", {}, "the test")
    assert graph.environment == ("WAREHOUSE_PASSWORD",)
    assert [s.key for s in graph.steps] == ["connect", "report"]
    assert "WAREHOUSE_PASSWORD" not in os.environ


def test_the_variables_found_are_exactly_those_dagster_needs_set(unset):
    graph = compile_job(ENV_CONFIG, "env_config_job", RUN_CONFIG, "the test")
    # In the order Dagster reads them: resources, then ops.
    assert sorted(graph.environment) == ["API_TOKEN", "DB_PORT", "VERBOSE"]
    job = load_job(ENV_CONFIG, "env_config_job")
    # Dagster, the oracle: with each one missing it fails naming it; with all set it runs.
    for missing in graph.environment:
        for name, value in VALUES.items():
            unset.setenv(name, value)
        unset.delenv(missing)
        with pytest.raises(dg.DagsterInvalidConfigError, match=f'variable "{missing}"'):
            job.execute_in_process(run_config=RUN_CONFIG)
    for name, value in VALUES.items():
        unset.setenv(name, value)
    result = job.execute_in_process(run_config=RUN_CONFIG)
    assert result.output_for_node("configured") == "db:5432:True:8"


def test_run_config_over_a_resources_default_reads_what_it_names(unset):
    run_config = {"resources": {"api": {"config": {"token": {"env": "OTHER_TOKEN"}}}}}
    run_config["ops"] = RUN_CONFIG["ops"]
    graph = compile_job(ENV_CONFIG, "env_config_job", run_config, "the test")
    assert sorted(graph.environment) == ["DB_PORT", "OTHER_TOKEN", "VERBOSE"]


def test_dagsters_own_reading_is_back_after_the_block(unset):
    before = source.StringSourceType.__dict__["post_process"]
    with reading_environment() as names:
        assert source.StringSource.post_process({"env": "NOT_SET_ANYWHERE"}) == ""
        assert source.IntSource.post_process({"env": "NOT_SET_EITHER"}) == 0
        assert source.BoolSource.post_process(True) is True
    assert names == ["NOT_SET_ANYWHERE", "NOT_SET_EITHER"]
    assert source.StringSourceType.__dict__["post_process"] is before
    with pytest.raises(Exception, match="NOT_SET_ANYWHERE"):
        source.StringSource.post_process({"env": "NOT_SET_ANYWHERE"})
