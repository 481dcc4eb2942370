"""A step's lineage for Airflow's OpenLineage provider (Airflow side).

The operator keeps plain data from the step's outcome (``StepLineage``: the URIs of the inputs it
loaded and the outputs it stored, the assets it materialized, the Dagster job, op and run); the
provider calls the operator's ``get_openlineage_facets_on_complete`` (or ``_on_failure``) when the
task ends, and ``operator_lineage`` turns that data into the provider's ``OperatorLineage``:

- inputs and outputs are datasets: a stored object by its URI (``s3://bucket`` and the key,
  ``file`` and the path), an asset by its key in the namespace ``dagster``;
- the job facet ``dagster`` names the Dagster job, op, step and run.

The provider and the OpenLineage client are imported only there: an Airflow without the
provider never loads them, and nothing here imports Dagster.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import attrs

# The namespace of a Dagster asset's dataset (its name is the key, "prefix/name").
ASSET_NAMESPACE = "dagster"
FACET_NAME = "dagster"


@attrs.frozen
class StepLineage:
    """What a step read and wrote, from its events."""

    job_name: str
    step_key: str
    dagster_run_id: str
    inputs: tuple[str, ...] = ()  # URIs of the stored objects it loaded
    outputs: tuple[str, ...] = ()  # URIs of the objects it stored
    assets: tuple[str, ...] = ()  # keys of the assets it materialized

    @property
    def op_name(self) -> str:
        """The op of the step: its key without a mapping key (``op[k]``) or graph prefix."""
        return self.step_key.split("[", 1)[0].rsplit(".", 1)[-1]

    @classmethod
    def from_events(
        cls, job_name: str, step_key: str, dagster_run_id: str, events: Iterable[Any]
    ) -> StepLineage:
        inputs, outputs, assets = [], [], []
        for event in events:
            if event.event_type == "LOADED_INPUT" and event.uri:
                inputs.append(event.uri)
            elif event.event_type == "HANDLED_OUTPUT" and event.uri:
                outputs.append(event.uri)
            elif event.event_type == "ASSET_MATERIALIZATION" and event.asset_key:
                assets.append(event.asset_key)
        unique = lambda values: tuple(dict.fromkeys(values))  # noqa: E731
        return cls(
            job_name, step_key, dagster_run_id, unique(inputs), unique(outputs), unique(assets)
        )


def dataset_name(uri: str) -> tuple[str, str]:
    """OpenLineage's namespace and name of a stored object (its naming conventions: the
    scheme and bucket, then the key; ``file`` and the path)."""
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        return "file", parts.path
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")


@functools.cache
def _facet_class() -> type:
    import attr
    from openlineage.client.facet_v2 import JobFacet

    @attr.define
    class DagsterJobFacet(JobFacet):
        """The Dagster job, op and step that an Airflow task ran, and the Dagster run."""

        job: str
        op: str
        step_key: str
        dagster_run_id: str

    return DagsterJobFacet


def operator_lineage(lineage: StepLineage) -> Any:
    """The provider's OperatorLineage of a step."""
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import Dataset

    def datasets(uris: Iterable[str]) -> list:
        return [Dataset(*dataset_name(uri)) for uri in uris]

    assets = [Dataset(namespace=ASSET_NAMESPACE, name=key) for key in lineage.assets]
    facet = _facet_class()(
        job=lineage.job_name,
        op=lineage.op_name,
        step_key=lineage.step_key,
        dagster_run_id=lineage.dagster_run_id,
    )
    return OperatorLineage(
        inputs=datasets(lineage.inputs),
        outputs=datasets(lineage.outputs) + assets,
        job_facets={FACET_NAME: facet},
    )
