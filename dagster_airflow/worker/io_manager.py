"""The one Dagster IO manager of dagster-airflow, over any IntermediateStorage (Dagster side)."""

from __future__ import annotations

import functools
import pickle
from collections.abc import Callable
from contextlib import ExitStack
from typing import BinaryIO

import dagster as dg

from dagster_airflow.storage.base import IntermediateStorage
from dagster_airflow.worker.output_preview import output_preview

PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL
# Where an asset's latest materialization is kept, by asset key: {ASSET_COPIES}/{key}/{partition}.
ASSET_COPIES = "assets"
UNPARTITIONED = "__unpartitioned__"


class IntermediateIOManager(dg.IOManager):
    """Pickles each output to ``{run_id}/{step_key}/{output_name}`` in the storage.

    ``run_id`` is the id derived from the Airflow run, which may differ from the Dagster run's own
    (the graphql runner launches every step as its own Dagster run). ``written`` records each
    output's URI so the worker can report it, and ``previews`` a short text of each, with the
    step's secrets redacted by ``redact``.
    """

    def __init__(
        self,
        storage: IntermediateStorage,
        run_id: str | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.storage = storage
        self.run_id = run_id
        self.redact = redact
        self.written: dict[str, str] = {}
        self.previews: dict[tuple[str, str | None], dict] = {}

    def _key(self, run_id: str, step_key: str, name: str, mapping_key: str | None) -> str:
        return self.storage.key(
            self.run_id or run_id, step_key, f"{name}[{mapping_key}]" if mapping_key else name
        )

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        mapping_key = context.mapping_key
        key = self._key(context.run_id, context.step_key, context.name, mapping_key)
        keys = [key]
        if context.has_asset_key:
            # An asset is also kept by its key, for the runs of other DAGs that read it.
            keys.append(self._asset_copy_key(context.asset_key, _partition(context)))
        # Pickled straight into the storage's writers (both at once for an asset): no copy of
        # the whole pickle is ever made, whatever the output's size. Each object is committed
        # when its block exits; a pickling error commits neither.
        with ExitStack() as stack:
            tee = _Tee([stack.enter_context(self.storage.open_write(k)) for k in keys])
            pickle.dump(obj, tee, protocol=PICKLE_PROTOCOL)
        uri = self.storage.uri(key)
        self.written[context.name] = uri
        self.previews[(context.name, mapping_key)] = output_preview(obj, tee.size, self.redact)
        context.add_output_metadata({"uri": dg.MetadataValue.path(uri)})

    def load_input(self, context: dg.InputContext) -> object:
        upstream = context.upstream_output
        if _produced_elsewhere(upstream) and context.has_asset_key:
            if context.has_asset_partitions:  # one or several partitions, each its own copy
                from dagster_airflow.worker.asset_partitions import load_asset_partitions

                copy_key = functools.partial(self._asset_copy_key, context.asset_key)
                return load_asset_partitions(context, self.storage, copy_key)
            # An asset another run (another DAG) materialized: its latest copy.
            key = self._asset_copy_key(context.asset_key, _partition(context))
        else:
            mapping_key = upstream.mapping_key
            key = self._key(upstream.run_id, upstream.step_key, upstream.name, mapping_key)
        with self.storage.open_read(key) as stream:
            return pickle.load(stream)

    def _asset_copy_key(self, asset_key: dg.AssetKey, partition: str | None) -> str:
        """``assets/{asset key}/{partition}``: the latest materialization of an asset, which the
        runs of other DAGs read."""
        return self.storage.key(ASSET_COPIES, "/".join(asset_key.path), partition or UNPARTITIONED)


class _Tee:
    """A write-only stream that writes each piece to every stream it holds, and counts."""

    def __init__(self, streams: list[BinaryIO]) -> None:
        self.streams = streams
        self.size = 0

    def write(self, data) -> int:
        for stream in self.streams:
            stream.write(data)
        size = memoryview(data).nbytes
        self.size += size
        return size


def _produced_elsewhere(upstream: dg.OutputContext | None) -> bool:
    """Whether an input's upstream output comes from no step of this run: Dagster hands a source
    asset's loader an output context it builds itself, of a placeholder run."""
    from dagster_airflow.job.dagster_compat import RUN_ID_PLACEHOLDER

    try:
        return upstream is None or upstream.run_id == RUN_ID_PLACEHOLDER
    except dg.DagsterInvariantViolationError:
        return True


def _partition(context: dg.InputContext | dg.OutputContext) -> str | None:
    try:
        return context.asset_partition_key if context.has_asset_partitions else None
    except dg.DagsterInvariantViolationError:  # a range of partitions in one run: no one copy
        return None


def intermediate_io_manager(io_manager: IntermediateIOManager) -> dg.IOManagerDefinition:
    """A resource definition that hands Dagster this very instance (so `written` is readable)."""
    return dg.IOManagerDefinition.hardcoded_io_manager(io_manager)


@dg.io_manager(
    config_schema={
        "storage": dg.Field(
            dg.Permissive(),
            is_required=False,
            default_value={"name": "filesystem"},
            description='The intermediate storage, as a DAG names it: {"name": "s3", '
            '"bucket": ...}. The graphql runner sets it from the DAG\'s storage on every run.',
        )
    },
    description="dagster-airflow's IO manager: outputs keyed by the Airflow-derived run id.",
)
def intermediate_io_manager_from_config(context: dg.InitResourceContext) -> IntermediateIOManager:
    """The IO manager a Dagster deployment binds as ``io_manager`` for the graphql runner.

    Each step the graphql runner launches is a Dagster run of its own, so outputs are keyed by
    the Airflow-derived run id the runner puts in the run's tag ``dagster-airflow/dagster_run_id``
    (``dagster-airflow/run_id`` from runners before that name; falling back to the Dagster run's
    id for a run launched from the Dagster UI). The storage is found by name through the plugin
    manager, as the worker finds it.
    """
    from dagster_airflow.keys import check_run_id
    from dagster_airflow.model import LEGACY_RUN_ID_TAG, RUN_ID_TAG, StorageSpec
    from dagster_airflow.plugins.manager import get_plugins

    spec = StorageSpec.from_value(dict(context.resource_config["storage"]))
    storage = get_plugins().storage(spec.name).create(spec.options)
    run = context.run
    tags = run.tags if run is not None else {}
    tag = RUN_ID_TAG if RUN_ID_TAG in tags else LEGACY_RUN_ID_TAG
    run_id = tags.get(tag)
    if run_id is not None:
        # Anyone who can launch a run in the Dagster UI can set the tag: it must be a run id.
        check_run_id(run_id, f"the Dagster run's tag {tag!r}")
    return IntermediateIOManager(storage, run_id=run_id)
