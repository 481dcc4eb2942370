"""The run config of one DAG run: the scaffolded one, its templates typed, `dag_run.conf` merged
over it (plain data; imports neither side).

Every task of a DAG run computes it from the same inputs, so every step sees the same config.
Dagster validates the result when the step runs.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

from dagster_airflow.errors import ConfigurationError

# The conf key that names the partition a run executes; the rest of the conf is run config.
PARTITION_KEY = "partition"
# dag_run.conf["dagster_tags"]: tags of the run's Dagster run, as a sensor's RunRequest gives them
# (dagster_airflow.task.sensor) or a user triggering the DAG does.
TAGS_KEY = "dagster_tags"


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merged key by key, the later winning, as `dagster job execute -c` does."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def schema_types(schema: Mapping[str, Any]) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return kind
    return [t for option in schema.get("anyOf", ()) for t in schema_types(option)]


def property_schema(schema: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """The schema of an object's property ``key``: its own, else the one of the properties
    that share it (``additionalProperties``, as a scaffolded schema states it once)."""
    found = schema.get("properties", {}).get(key)
    if found is None:
        found = schema.get("additionalProperties")
    return found if isinstance(found, Mapping) else {}


def _typed(text: str, schema: Mapping[str, Any]) -> Any:
    """A rendered template as the type the schema expects; the text itself when it is not one
    (Dagster then says which field and type)."""
    kinds = schema_types(schema)
    if "string" in kinds:
        return text
    stripped = text.strip()
    if "null" in kinds and stripped in ("", "None", "null"):
        return None
    if "boolean" in kinds and stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    if "integer" in kinds:
        try:
            return int(stripped)
        except ValueError:
            pass
    if "number" in kinds:
        try:
            return float(stripped)
        except ValueError:
            pass
    if "array" in kinds or "object" in kinds:
        try:
            return ast.literal_eval(stripped)
        except (ValueError, SyntaxError):
            pass
    return text


def typed_templates(rendered: Any, source: Any, schema: Mapping[str, Any]) -> Any:
    """The rendered run config with each templated value converted to its field's type, so
    ``"{{ dag_run.conf.factor }}"`` for an Int field gives 3, not "3"."""
    if is_template(source) and isinstance(rendered, str):
        return _typed(rendered, schema)
    if isinstance(rendered, Mapping) and isinstance(source, Mapping):
        return {
            key: typed_templates(value, source.get(key), property_schema(schema, key))
            for key, value in rendered.items()
        }
    if isinstance(rendered, list) and isinstance(source, list) and len(rendered) == len(source):
        items = schema.get("items", {})
        return [typed_templates(r, s, items) for r, s in zip(rendered, source, strict=True)]
    return rendered


def run_config_for_run(
    rendered: Mapping[str, Any],
    source: Mapping[str, Any],
    conf: Mapping[str, Any] | None,
    schema: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The scaffolded run config (rendered, templates typed) with the conf's run config keys
    (ops, resources ...: those of the job's schema) deep-merged over it, the conf winning.
    Other conf keys are left to the templates that read them."""
    schema = schema or {}
    typed = typed_templates(dict(rendered), dict(source), schema)
    keys = schema.get("properties", {})
    fragment = {k: v for k, v in (conf or {}).items() if k in keys and k != PARTITION_KEY}
    return deep_merge(typed, fragment)


def run_tags_from_conf(conf: Mapping[str, Any]) -> dict[str, str]:
    """The Dagster run's tags that ``dag_run.conf["dagster_tags"]`` gives (none when unset)."""
    tags = conf.get(TAGS_KEY)
    if tags is None:
        return {}
    if not isinstance(tags, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise ConfigurationError(
            f'dag_run.conf["{TAGS_KEY}"] is {tags!r}, not a mapping of strings to strings; '
            f'trigger the DAG with such as {{"{TAGS_KEY}": {{"team": "sales"}}}}.'
        )
    return dict(tags)
