"""A partitioned asset job whose runs the team's Dagster instance should show: materializations
with metadata, an observation, a check evaluation, a step Dagster retries, and a step a test can
make fail (config ``fail``). ``prices`` and ``volumes`` have no dependency: they run in parallel."""

import dagster as dg

regions = dg.StaticPartitionsDefinition(["eu", "us"])


class Fail(dg.Config):
    fail: bool = False


@dg.asset(
    partitions_def=regions,
    check_specs=[dg.AssetCheckSpec("positive_rows", asset="prices")],
)
def prices(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
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
def volumes(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    if context.retry_number < 1:
        raise ValueError("volumes fails on its first attempt")
    return dg.MaterializeResult(metadata={"rows": 5, "attempt": context.retry_number + 1})


@dg.asset(partitions_def=regions, deps=[prices, volumes])
def summary(context: dg.AssetExecutionContext, config: Fail) -> dg.MaterializeResult:
    if config.fail:
        raise ValueError("summary fails, as its config asks")
    return dg.MaterializeResult(metadata={"rows": 8})


catalog = dg.define_asset_job("catalog", selection=[prices, volumes, summary])

defs = dg.Definitions(assets=[prices, volumes, summary], jobs=[catalog])
