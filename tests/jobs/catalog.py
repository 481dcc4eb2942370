"""A partitioned asset job whose runs the team's Dagster instance should show: materializations
with metadata, an observation, a check evaluation, a step Dagster retries, and a step a test can
make fail (config ``fail``). ``prices`` and ``volumes`` have no dependency: they run in parallel."""

import time

import dagster as dg

regions = dg.StaticPartitionsDefinition(["eu", "us"])


class Fail(dg.Config):
    fail: bool = False


class Pause(dg.Config):
    seconds: float = 0  # long enough for a test to stop the DAG run while the step runs


@dg.asset(
    partitions_def=regions,
    check_specs=[dg.AssetCheckSpec("positive_rows", asset="prices")],
)
def prices(context: dg.AssetExecutionContext, config: Pause) -> dg.MaterializeResult:
    time.sleep(config.seconds)
    context.log_event(
        dg.AssetObservation(
            asset_key="price_feed", metadata={"files": 2}, partition=context.partition_key
        )
    )
    return dg.MaterializeResult(
        metadata={"rows": 3, "region": context.partition_key},
        check_results=[dg.AssetCheckResult(passed=True, metadata={"min_rows": 1})],
    )


@dg.asset(partitions_def=regions, retry_policy=dg.RetryPolicy(max_retries=1))
def volumes(context: dg.AssetExecutionContext) -> dg.Output:
    if context.retry_number < 1:
        raise ValueError("volumes fails on its first attempt")
    # An output the IO manager stores: summary loads it (an input, for lineage).
    return dg.Output(5, metadata={"rows": 5, "attempt": context.retry_number + 1})


@dg.asset(partitions_def=regions, deps=[prices])
def summary(context: dg.AssetExecutionContext, config: Fail, volumes: int) -> dg.MaterializeResult:
    if config.fail:
        raise ValueError("summary fails, as its config asks")
    return dg.MaterializeResult(metadata={"rows": 3 + volumes})


catalog = dg.define_asset_job("catalog", selection=[prices, volumes, summary])

defs = dg.Definitions(assets=[prices, volumes, summary], jobs=[catalog])
