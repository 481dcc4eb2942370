"""DagsterOperator on a mapped step: the mapping key a task instance gets is its Dagster step."""

from __future__ import annotations

import pytest

from dagster_airflow.errors import ConfigurationError
from dagster_airflow.operator import DagsterOperator

LOCATION = {"python_file": "/jobs/pieces.py"}


def test_a_mapped_task_instance_runs_the_step_of_its_mapping_key():
    operator = DagsterOperator(
        task_id="compute_piece",
        step_key="compute_piece[?]",
        job_name="pieces",
        code_location=LOCATION,
        mapping_key="piece_3",
    )
    assert operator.dagster_step_key == "compute_piece[piece_3]"
    # A template field: in a mapped task group Airflow resolves it when it renders the task.
    assert "mapping_key" in DagsterOperator.template_fields


def test_a_step_that_is_not_mapped_runs_as_it_is_named():
    operator = DagsterOperator(
        task_id="merge", step_key="merge", job_name="pieces", code_location=LOCATION
    )
    assert operator.dagster_step_key == "merge"


def test_a_mapped_step_without_a_mapping_key_is_one_clear_sentence():
    with pytest.raises(ConfigurationError) as error:
        DagsterOperator(
            task_id="compute_piece",
            step_key="compute_piece[?]",
            job_name="pieces",
            code_location=LOCATION,
        )
    assert str(error.value) == (
        "task 'compute_piece' runs the mapped step 'compute_piece[?]' but has no mapping_key; "
        "map it over its upstream task's keys: "
        "DagsterOperator.partial(...).expand(mapping_key=upstream.output)."
    )
