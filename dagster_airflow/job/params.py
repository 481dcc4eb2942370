"""A Dagster job's config schema as JSON Schema: the DAG's Airflow `params` (Dagster side).

Airflow validates a trigger's `conf` against these schemas and its trigger form shows their
fields. A conf is a fragment of the run config, deep-merged over the scaffolded one, so no field
is required here; Dagster validates the merged whole when the step runs.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from dagster_airflow.run_conf import is_template, schema_types

_SCALARS = {"INT": "integer", "FLOAT": "number", "BOOL": "boolean", "STRING": "string"}


def json_schema(config_type) -> dict[str, Any]:
    """The JSON Schema of one Dagster config type."""
    from dagster_airflow.job.dagster_compat import ConfigTypeKind

    kind = config_type.kind
    if kind == ConfigTypeKind.ANY:
        return {}
    if kind == ConfigTypeKind.SCALAR:
        return {"type": _SCALARS[config_type.scalar_kind.name]}
    if kind == ConfigTypeKind.ENUM:
        return {"type": "string", "enum": [v.config_value for v in config_type.enum_values]}
    if kind == ConfigTypeKind.ARRAY:
        return {"type": "array", "items": json_schema(config_type.inner_type)}
    if kind == ConfigTypeKind.NONEABLE:
        return nullable(json_schema(config_type.inner_type))
    if kind == ConfigTypeKind.MAP:
        return {"type": "object", "additionalProperties": json_schema(config_type.inner_type)}
    if kind == ConfigTypeKind.SCALAR_UNION:
        return {
            "anyOf": [
                json_schema(config_type.scalar_type),
                json_schema(config_type.non_scalar_type),
            ]
        }
    # Sorted: Dagster's field order varies between processes, and the DAG file must not.
    properties = {
        name: json_schema(field.config_type) for name, field in sorted(config_type.fields.items())
    }
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if kind == ConfigTypeKind.SELECTOR:
        schema |= {"additionalProperties": False, "maxProperties": 1}
    elif kind == ConfigTypeKind.STRICT_SHAPE:
        schema["additionalProperties"] = False
    return schema  # PERMISSIVE_SHAPE stays open


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema that also admits None (Dagster's Noneable)."""
    if isinstance(schema.get("type"), str):
        widened = {**schema, "type": [schema["type"], "null"]}
        if "enum" in schema:
            widened["enum"] = [*schema["enum"], None]
        return widened
    if not schema:
        return schema
    return {"anyOf": [schema, {"type": "null"}]}


# Top-level run config keys left out of the schema unless the scaffolded run config sets them:
# each step runs alone in its own process, so Dagster's executor config means nothing there, and
# the worker prints every event itself.
_QUIET_KEYS = ("execution", "loggers")


def run_config_schema(job, run_config: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON Schema of the job's run config (ops, resources ...)."""
    schema = json_schema(job.run_config_schema.config_type)
    properties = schema.get("properties", {})
    for key in _QUIET_KEYS:
        if key not in run_config:
            properties.pop(key, None)
    return schema


# An object whose properties share one schema this many times or more states it once.
COMPACT_FROM = 3
# Names a pattern can list as they are (Dagster's names): each matched in linear time.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_]+")
_NAMES_PATTERN = re.compile(r"\^\(([A-Za-z0-9_|]+)\)\$")


def _canonical(schema: Any) -> str:
    return json.dumps(schema, sort_keys=True)


def _names_allowed(names: list[str]) -> dict[str, Any]:
    """A ``propertyNames`` schema admitting exactly ``names``: a pattern ``^(a|b)$`` when each is
    a plain name, as jsonschema checks an ``enum`` against every one of its items (a job of
    1,000 ops: a million comparisons at each parse of a scheduled DAG), a pattern at once."""
    if all(_PLAIN_NAME.fullmatch(name) for name in names):
        return {"pattern": "^(" + "|".join(names) + ")$"}
    return {"enum": names}


def _names_of(schema: Any) -> list[str] | None:
    """The names a ``propertyNames`` schema of `_names_allowed` admits."""
    if not isinstance(schema, dict):
        return None
    if isinstance(schema.get("enum"), list):
        return schema["enum"]
    found = _NAMES_PATTERN.fullmatch(schema.get("pattern", "")) if "pattern" in schema else None
    return found.group(1).split("|") if found else None


def compact_schema(schema: Any) -> Any:
    """The same schema, of a size that does not grow with the job's ops.

    A closed object (``additionalProperties: false``) whose properties mostly share one schema,
    as a job's ``ops`` do (every op without config has the same entry), states that schema
    once as ``additionalProperties`` and lists the names allowed (``propertyNames``): it
    accepts exactly what the original accepts, and Airflow validates it (at every parse of a
    scheduled DAG) in a time that grows only with the run config it checks. The top level keeps
    its properties: they name the run config's keys (ops, resources ...) for the operator.
    """
    if not isinstance(schema, dict):
        return schema
    return {k: _compacted(v) for k, v in schema.items()}


def _compacted(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_compacted(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    compacted = {k: _compacted(v) for k, v in schema.items()}
    properties = compacted.get("properties")
    if compacted.get("additionalProperties") is not False or not isinstance(properties, dict):
        return compacted
    counts = Counter(_canonical(v) for v in properties.values())
    if not counts or counts.most_common(1)[0][1] < COMPACT_FROM:
        return compacted
    text = counts.most_common(1)[0][0]
    common = next(v for v in properties.values() if _canonical(v) == text)
    own = {k: v for k, v in properties.items() if v != common}
    if own:
        compacted["properties"] = own
    else:
        del compacted["properties"]
    compacted["propertyNames"] = _names_allowed(list(properties))
    compacted["additionalProperties"] = common
    return compacted


def expand_schema(schema: Any) -> Any:
    """A schema `compact_schema` wrote, as it was: each named property with its own schema."""
    if isinstance(schema, list):
        return [expand_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    expanded = {k: expand_schema(v) for k, v in schema.items()}
    names = _names_of(expanded.get("propertyNames"))
    shared = expanded.get("additionalProperties")
    if names is None or not isinstance(shared, dict):
        return expanded
    own = expanded.get("properties", {})
    expanded["properties"] = {name: own.get(name, shared) for name in names}
    expanded["additionalProperties"] = False
    del expanded["propertyNames"]
    return expanded


def param_default(value: Any) -> Any:
    """A scaffolded run config value as a param's default: its Airflow templates left out, since
    they render only when a task runs (and an Int field holding "{{ ... }}" is no Int yet)."""
    if isinstance(value, Mapping):
        return {k: param_default(v) for k, v in value.items() if not is_template(v)}
    if isinstance(value, list):
        return [param_default(v) for v in value if not is_template(v)]
    return value


def check_defaults(schema: Mapping[str, Any], run_config: Mapping[str, Any]) -> None:
    """Raise unless each trigger form default (`param_default` of a run config key) fits the
    compacted ``schema``'s property for it, as Airflow checks each run's params: the DAG file
    adds its params without Airflow's own check at each parse (the run config of a big job
    walked through jsonschema every time)."""
    import jsonschema

    from dagster_airflow.errors import ConfigurationError

    for key, property_schema in schema.get("properties", {}).items():
        default = param_default(run_config.get(key, {}))
        error = jsonschema.exceptions.best_match(
            jsonschema.validators.validator_for(property_schema)(property_schema).iter_errors(
                default
            )
        )
        if error is not None:
            raise ConfigurationError(
                f"the run config's {key!r} does not fit the trigger form's schema for it "
                f"({error.message}), so Airflow would refuse the DAG's runs; nothing was "
                "written: this is a bug in dagster-airflow, please report it with the scaffold "
                "command."
            )


_PLACEHOLDERS = {"integer": 0, "number": 0.0, "boolean": False, "null": None, "array": []}


def _placeholder(template: str, schema: Mapping[str, Any]) -> Any:
    if "enum" in schema:
        return schema["enum"][0]
    kinds = schema_types(schema)
    if not kinds or "string" in kinds:
        return template
    return _PLACEHOLDERS.get(kinds[0], {})


def with_placeholders(run_config: Any, schema: Mapping[str, Any]) -> Any:
    """The run config with each template that must render a non-string (an Int field holding
    "{{ dag_run.conf.factor }}") replaced by a value of its type, so Dagster can plan the job at
    scaffold time; the DAG keeps the templates."""
    if is_template(run_config):
        return _placeholder(run_config, schema)
    if isinstance(run_config, Mapping):
        properties = schema.get("properties", {})
        return {k: with_placeholders(v, properties.get(k, {})) for k, v in run_config.items()}
    if isinstance(run_config, list):
        return [with_placeholders(v, schema.get("items", {})) for v in run_config]
    return run_config
