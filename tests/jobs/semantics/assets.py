"""An asset job as Dagster's docs build one: assets with a pythonic Config and a default run
config, asset checks (one passing, one failing that does not block, one blocking that fails), and
a retry policy for every op of the job (``define_asset_job(op_retry_policy=)``)."""

import dagster as dg


class SourceConfig(dg.Config):
    rows: int = 2


@dg.asset
def raw_numbers(config: SourceConfig) -> list[int]:
    return list(range(config.rows))


@dg.asset
def cleaned(raw_numbers: list[int]) -> list[int]:
    return sorted(set(raw_numbers))


@dg.asset_check(asset=cleaned)
def cleaned_not_empty(cleaned: list[int]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=bool(cleaned), metadata={"rows": len(cleaned)})


@dg.asset_check(asset=cleaned)
def cleaned_has_no_zero(cleaned: list[int]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=0 not in cleaned, severity=dg.AssetCheckSeverity.WARN)


@dg.asset
def summary(context: dg.AssetExecutionContext, cleaned: list[int]) -> int:
    # Fails on its first attempt: the job's op_retry_policy retries it once.
    if context.retry_number == 0:
        raise ConnectionError("the warehouse did not answer")
    return sum(cleaned)


@dg.asset(
    check_specs=[dg.AssetCheckSpec("all_positive", asset="stats", blocking=True)],
)
def stats(raw_numbers: list[int]):
    yield dg.Output({"min": min(raw_numbers), "max": max(raw_numbers)})
    yield dg.AssetCheckResult(check_name="all_positive", passed=min(raw_numbers) > 0)


@dg.asset
def stats_report(stats: dict) -> str:
    return f"from {stats['min']} to {stats['max']}"


asset_checks_job = dg.define_asset_job(
    "asset_checks_job",
    selection=dg.AssetSelection.all(),
    op_retry_policy=dg.RetryPolicy(max_retries=1, delay=0.1),
    config=dg.RunConfig(ops={"raw_numbers": SourceConfig(rows=4)}),
)

defs = dg.Definitions(
    assets=[raw_numbers, cleaned, summary, stats, stats_report],
    asset_checks=[cleaned_not_empty, cleaned_has_no_zero],
    jobs=[asset_checks_job],
)
