"""The IO manager keeps each asset by its key too, so a run of another DAG (a job whose source
asset this one materializes) loads it, as Dagster's own IO managers load assets across runs."""

import dagster as dg

from dagster_airflow.storage.filesystem import FilesystemStorage
from dagster_airflow.worker.io_manager import IntermediateIOManager, intermediate_io_manager


@dg.asset
def orders() -> list:
    return [3, 1, 2]


@dg.asset
def order_report(orders: list) -> int:
    return sum(orders)


HOURLY = dg.HourlyPartitionsDefinition(start_date="2022-05-31-00:00")


@dg.asset(partitions_def=HOURLY)
def readings(context: dg.AssetExecutionContext) -> str:
    return f"readings {context.partition_key}"


@dg.asset(partitions_def=HOURLY)
def summary(readings: str) -> str:
    return readings.upper()


def materialize(assets, selection, storage, run_id: str, **kwargs):
    io_manager = intermediate_io_manager(IntermediateIOManager(storage, run_id=run_id))
    return dg.materialize(
        assets, selection=selection, resources={"io_manager": io_manager}, **kwargs
    )


def test_an_asset_written_in_one_run_is_read_in_another(tmp_path):
    storage = FilesystemStorage(base_dir=str(tmp_path))
    materialize([orders, order_report], [orders], storage, "run-one")

    result = materialize([orders, order_report], [order_report], storage, "run-two")

    assert result.output_for_node("order_report") == 6
    assert (tmp_path / "assets" / "orders" / "__unpartitioned__").exists()


def test_a_partitioned_asset_is_kept_per_partition(tmp_path):
    storage = FilesystemStorage(base_dir=str(tmp_path))
    for partition in ("2022-05-31-00:00", "2022-05-31-01:00"):
        materialize([readings, summary], [readings], storage, partition, partition_key=partition)

    result = materialize(
        [readings, summary], [summary], storage, "later", partition_key="2022-05-31-01:00"
    )

    assert result.output_for_node("summary") == "READINGS 2022-05-31-01:00"
