"""Dagster assets as Airflow Assets: their URIs, what each step materializes, and the extra of
the asset events a task emits (plain functions; those handed Dagster objects import nothing).
The StepEvent fields of a materialization or a check come from event_details.py.

An asset key ``["sales", "daily"]`` is the Airflow Asset named ``sales/daily`` with the URI
``dagster://asset/sales/daily``; `dagster-airflow scaffold --asset-uri TEMPLATE` changes the URI
(``s3://lake/{key}``), the name stays the key.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dagster_airflow.errors import ConfigurationError

DEFAULT_URI_TEMPLATE = "dagster://asset/{key}"


def asset_uri(key: str, template: str = DEFAULT_URI_TEMPLATE) -> str:
    """The Airflow Asset URI of a Dagster asset key ("a/b")."""
    if "{key}" not in template:
        raise ConfigurationError(
            f"--asset-uri {template!r} has no '{{key}}'; write it as scheme://.../{{key}}, "
            "such as s3://lake/{key}."
        )
    return template.replace("{key}", key)


def step_assets(job, step) -> tuple[str, ...]:
    """The asset keys ("a/b") an execution step materializes: its outputs that are assets."""
    layer = job.asset_layer
    keys = (
        layer.get_asset_key_for_node_output(step.node_handle, o.name) for o in step.step_outputs
    )
    return tuple(sorted({k.to_user_string() for k in keys if k is not None}))


def source_assets(job, steps) -> tuple[str, ...]:
    """The asset keys the job's steps read but do not materialize: what another DAG makes."""
    layer = job.asset_layer
    read, made = set(), set()
    for step in steps:
        made.update(step_assets(job, step))
        for step_input in step.step_inputs:
            key = layer.get_asset_key_for_node_input(step.node_handle, step_input.name)
            if key is not None:
                read.add(key.to_user_string())
    return tuple(sorted(read - made))


def outlet_extras(events: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Asset key -> the extra of its Airflow asset event: the materialization's partition and
    metadata, and the checks evaluated on it."""
    extras: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.asset_key is None:
            continue
        extra = extras.setdefault(event.asset_key, {})
        if event.event_type == "ASSET_MATERIALIZATION":
            extra["partition"] = event.partition
            extra["metadata"] = event.metadata or {}
        elif event.event_type == "ASSET_CHECK_EVALUATION":
            extra.setdefault("checks", {})[event.check_name] = {
                "passed": event.passed,
                "severity": event.severity,
                "metadata": event.metadata or {},
            }
    return extras
