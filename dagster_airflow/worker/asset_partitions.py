"""An input that reads several partitions of an asset, loaded as Dagster's IO managers load it
(Dagster side).

An unpartitioned asset or asset check reading a partitioned asset, or a partition mapping onto
several upstream partitions (daily into weekly, a static mapping), gets from Dagster's
`UPathIOManager` (the filesystem and cloud IO managers) one value per upstream partition: none
for no partition, the value itself for one, a dict by partition key for several. A partition
that was never materialized fails the step with a FileNotFoundError, unless the input's
metadata says ``allow_missing_partitions=True``: then it is left out, with a warning. Here each
partition is the asset's copy another run kept, ``assets/{key}/{partition}`` in the storage.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable

import dagster as dg

from dagster_airflow.errors import AssetPartitionNotFoundError, OutputNotFoundError
from dagster_airflow.storage.base import IntermediateStorage


def load_asset_partitions(
    context: dg.InputContext, storage: IntermediateStorage, copy_key: Callable[[str], str]
) -> object:
    """The input's upstream partitions, as `UPathIOManager.load_input` returns them (a skipped
    partition is None).

    ``copy_key`` names the storage key of a partition's copy.
    """
    keys = list(context.asset_partition_keys)
    if not keys:
        return None
    if len(keys) == 1:
        return _load(context, storage, copy_key, keys[0])
    loaded = {key: _load(context, storage, copy_key, key) for key in keys}
    # As Dagster's: a partition left out, or whose value is None, is no entry of the dict.
    return {key: value for key, value in loaded.items() if value is not None}


def _load(
    context: dg.InputContext, storage: IntermediateStorage, copy_key: Callable, partition: str
) -> object:
    key = copy_key(partition)
    try:
        with storage.open_read(key) as stream:
            return pickle.load(stream)
    except OutputNotFoundError:
        asset = context.asset_key.to_user_string()
        if (context.definition_metadata or {}).get("allow_missing_partitions", False):
            context.log.warning(
                f"Couldn't load partition {partition} and skipped it "
                "because the input metadata includes allow_missing_partitions=True"
            )
            return None
        raise AssetPartitionNotFoundError(
            f"partition {partition!r} of asset {asset!r} was never materialized: there is no "
            f"copy of it at {storage.uri(key)!r}; materialize that partition first (run its "
            "DAG for it), or give the input metadata allow_missing_partitions=True."
        ) from None
