"""Tell a DAG file that is out of date with its job from a wrong run config (Dagster side).

When an op is renamed or removed, the DAG file still has a task for its old step key and, in its
run config, the old op's config. Dagster's planner then fails first, and its message blames the
run config or names an "unknown step". The true cause is that the DAG file was scaffolded from
an older version of the job; scaffolding it again is the fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dagster_airflow.errors import ConfigurationError, DagsterAirflowError

OUT_OF_DATE = "the DAG file is out of date with the job: scaffold it again"


def _node_names(job) -> set[str]:
    """Every op and graph of the job by its handle ("op", "graph", "graph.op")."""
    names: set[str] = set()

    def walk(graph, prefix: str) -> None:
        for node in graph.nodes:
            name = f"{prefix}{node.name}"
            names.add(name)
            inner = getattr(node.definition, "nodes", None)
            if inner is not None:
                walk(node.definition, f"{name}.")

    walk(job.graph, "")
    return names


def _config_node_names(ops: Any, prefix: str = "") -> set[str]:
    """The op and graph names a run config's ``ops`` section configures (nested graphs too)."""
    names: set[str] = set()
    if isinstance(ops, Mapping):
        for name, value in ops.items():
            names.add(f"{prefix}{name}")
            if isinstance(value, Mapping) and "ops" in value:
                names |= _config_node_names(value["ops"], f"{prefix}{name}.")
    return names


def _listed(names: set[str], limit: int = 10) -> str:
    shown = sorted(names)
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more


def stale_dag_error(
    job, job_name: str, step_key: str, run_config: Mapping[str, Any]
) -> DagsterAirflowError | None:
    """The error to raise when the DAG file no longer fits the job, else None."""
    nodes = _node_names(job)
    node = re.sub(r"\[.*\]$", "", step_key)  # a mapped step: op[mapping_key]
    if node not in nodes:
        return ConfigurationError(
            f"job {job_name!r} has no step {step_key!r} (its ops: {_listed(nodes)}); {OUT_OF_DATE}."
        )
    unknown = sorted(_config_node_names(run_config.get("ops")) - nodes)
    if unknown:
        return ConfigurationError(
            f"the DAG's run config configures op {unknown[0]!r}, which job {job_name!r} no "
            f"longer has (its ops: {_listed(nodes)}); {OUT_OF_DATE}."
        )
    return None
