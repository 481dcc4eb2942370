"""The job's config schema as Airflow params, and a DAG run's run config from the conf."""

from __future__ import annotations

import pytest

from dagster_airflow.job.params import json_schema, run_config_schema, with_placeholders
from dagster_airflow.run_conf import run_config_for_run, typed_templates
from examples.scheduling import typed_config


def scale_config_schema() -> dict:
    return run_config_schema(typed_config, {})["properties"]["ops"]["properties"]["scale"][
        "properties"
    ]["config"]


def test_each_dagster_type_maps_to_its_json_schema():
    schema = scale_config_schema()

    assert schema["properties"] == {
        "factor": {"type": "integer"},
        "ratio": {"type": "number"},
        "enabled": {"type": "boolean"},
        "mode": {"type": "string", "enum": ["FAST", "CAREFUL"]},
        "label": {"type": ["string", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "extra": {"type": "object", "properties": {}},  # Permissive: open
    }
    # A Shape admits no other field, as Dagster's does; no field is required, since a conf is a
    # fragment merged over the scaffolded run config.
    assert schema["additionalProperties"] is False
    assert "required" not in schema


def test_a_selector_admits_one_choice_and_a_map_any_key():
    import dagster as dg
    from dagster._config import resolve_to_config_type

    selector = json_schema(resolve_to_config_type(dg.Selector({"a": int, "b": str})))
    assert selector["maxProperties"] == 1
    mapping = json_schema(resolve_to_config_type(dg.Map(str, int)))
    assert mapping == {"type": "object", "additionalProperties": {"type": "integer"}}


def test_airflow_validates_a_conf_against_the_params():
    from airflow.sdk import Param
    from airflow.sdk.definitions.param import ParamValidationError

    ops = run_config_schema(typed_config, {})["properties"]["ops"]
    Param({"scale": {"config": {"factor": 3}}}, **ops).resolve()
    with pytest.raises(ParamValidationError, match="'3' is not of type 'integer'"):
        Param({"scale": {"config": {"factor": "3"}}}, **ops).resolve()
    with pytest.raises(ParamValidationError, match="'nope' was unexpected"):
        Param({"scale": {"config": {"nope": 1}}}, **ops).resolve()


@pytest.mark.parametrize(
    ("rendered", "schema", "typed"),
    [
        ("3", {"type": "integer"}, 3),
        ("2.5", {"type": "number"}, 2.5),
        ("True", {"type": "boolean"}, True),
        ("false", {"type": "boolean"}, False),
        ("None", {"type": ["integer", "null"]}, None),
        ("['a', 'b']", {"type": "array"}, ["a", "b"]),
        ("3", {"type": "string"}, "3"),
        ("many", {"type": "integer"}, "many"),  # left for Dagster to name field, value and type
    ],
)
def test_a_template_renders_the_type_its_field_expects(rendered, schema, typed):
    assert typed_templates(rendered, "{{ dag_run.conf.x }}", schema) == typed


def test_a_value_that_was_no_template_keeps_its_type():
    assert typed_templates("3", "3", {"type": "integer"}) == "3"


def test_the_conf_is_deep_merged_over_the_run_config_for_the_schemas_keys_only():
    schema = run_config_schema(typed_config, {})
    scaffolded = {"ops": {"scale": {"config": {"factor": "{{ x }}", "ratio": 1.5}}}}
    rendered = {"ops": {"scale": {"config": {"factor": "4", "ratio": 1.5}}}}
    conf = {"x": 4, "partition": "p", "ops": {"scale": {"config": {"ratio": 2.0}}}}

    merged = run_config_for_run(rendered, scaffolded, conf, schema)

    assert merged == {"ops": {"scale": {"config": {"factor": 4, "ratio": 2.0}}}}


def test_the_scaffold_plans_a_template_of_an_int_field_with_a_placeholder():
    schema = scale_config_schema()
    config = {"factor": "{{ x }}", "mode": "{{ y }}", "label": "{{ z }}"}

    assert with_placeholders(config, schema) == {"factor": 0, "mode": "FAST", "label": "{{ z }}"}


def test_the_scaffold_checks_the_trigger_forms_defaults_as_airflow_checks_each_run():
    """The DAG file adds its params without Airflow's check at each parse: the scaffold makes
    it, templates left out of the defaults as the form has them."""
    from dagster_airflow.errors import ConfigurationError
    from dagster_airflow.job.params import check_defaults, compact_schema

    schema = compact_schema(run_config_schema(typed_config, {}))
    check_defaults(schema, {"ops": {"scale": {"config": {"factor": "{{ x }}", "ratio": 1.5}}}})
    with pytest.raises(ConfigurationError, match=r"run config's 'ops' does not fit .*'many'"):
        check_defaults(schema, {"ops": {"scale": {"config": {"factor": "many"}}}})
