"""Jobs with typed config, partitions, assets and asset checks, in the shapes Dagster's
documentation teaches: the examples of docs/scheduling.md, and what its tests run."""

from enum import Enum

import dagster as dg


class Mode(Enum):
    FAST = "FAST"
    CAREFUL = "CAREFUL"


@dg.op(
    config_schema={
        "factor": int,
        "ratio": float,
        "enabled": bool,
        "mode": dg.Enum.from_python_enum(Mode),
        "label": dg.Field(dg.Noneable(str), default_value=None),
        "tags": [str],
        "extra": dg.Permissive(),
    }
)
def scale(context: dg.OpExecutionContext) -> dict:
    config = context.op_config
    context.log.info(f"factor {config['factor']!r} of type {type(config['factor']).__name__}")
    return {**config, "scaled": config["factor"] * config["ratio"]}


@dg.op
def describe(scaled: dict) -> str:
    return f"{scaled['mode']}:{scaled['scaled']}"


@dg.job
def typed_config():
    describe(scale())


HOURLY = dg.HourlyPartitionsDefinition(start_date="2022-05-31-00:00")
DAILY = dg.DailyPartitionsDefinition(start_date="2022-06-01")


@dg.asset(partitions_def=HOURLY)
def hourly_readings(context: dg.AssetExecutionContext) -> str:
    context.log.info(f"materializing partition {context.partition_key}")
    return f"readings for {context.partition_key}"


@dg.asset(partitions_def=HOURLY)
def hourly_summary(context: dg.AssetExecutionContext, hourly_readings: str) -> str:
    return f"{hourly_readings} summarized ({context.partition_key})"


@dg.asset(partitions_def=DAILY)
def daily_totals(context: dg.AssetExecutionContext) -> dict:
    window = context.partition_time_window
    return {"partition": context.partition_key, "start": window.start.isoformat()}


@dg.static_partitioned_config(partition_keys=["red", "green", "blue"])
def colour_config(partition_key: str) -> dict:
    return {"ops": {"paint": {"config": {"colour": partition_key}}}}


@dg.op(config_schema={"colour": str})
def paint(context: dg.OpExecutionContext) -> str:
    return f"painted {context.op_config['colour']} (partition {context.partition_key})"


@dg.job(config=colour_config)
def colours():
    paint()


hourly_job = dg.define_asset_job("hourly_job", selection=[hourly_readings, hourly_summary])
daily_job = dg.define_asset_job("daily_job", selection=[daily_totals])

REGIONS = dg.StaticPartitionsDefinition(["north", "south"])


@dg.asset(partitions_def=dg.MultiPartitionsDefinition({"date": DAILY, "region": REGIONS}))
def regional_sales(context: dg.AssetExecutionContext) -> str:
    return f"sales {context.partition_key}"


regional_job = dg.define_asset_job("regional_job", selection=[regional_sales])

FRUITS = dg.DynamicPartitionsDefinition(name="fruits")


@dg.asset(partitions_def=FRUITS)
def fruit(context: dg.AssetExecutionContext) -> str:
    return context.partition_key


fruit_job = dg.define_asset_job("fruit_job", selection=[fruit])


@dg.asset(check_specs=[dg.AssetCheckSpec("positive", asset="orders", blocking=True)])
def orders():
    values = [3, 1, 2]
    yield dg.Output(values, metadata={"rows": len(values), "source": "shop"})
    yield dg.AssetCheckResult(check_name="positive", passed=min(values) > 0, metadata={"min": 1})


@dg.asset(check_specs=[dg.AssetCheckSpec("balanced", asset="refunds", blocking=True)])
def refunds():
    yield dg.Output([5, -7], metadata={"rows": 2})
    yield dg.AssetCheckResult(check_name="balanced", passed=False, metadata={"sum": -2})


@dg.asset
def refund_report(refunds: list) -> int:
    return sum(refunds)


@dg.asset
def order_report(orders: list) -> int:
    return sum(orders)


checked_job = dg.define_asset_job("checked_job", selection=[orders, refunds, refund_report])
report_job = dg.define_asset_job("report_job", selection=[order_report])

defs = dg.Definitions(
    assets=[
        hourly_readings,
        hourly_summary,
        daily_totals,
        regional_sales,
        fruit,
        orders,
        refunds,
        refund_report,
        order_report,
    ],
    jobs=[
        typed_config,
        colours,
        hourly_job,
        daily_job,
        regional_job,
        fruit_job,
        checked_job,
        report_job,
    ],
)
