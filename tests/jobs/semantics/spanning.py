"""Inputs that span partitions, as Dagster's docs teach them: an unpartitioned asset and an asset
check reading every partition of a partitioned asset, one that reads an asset with a partition
never materialized (fails, as in Dagster), one that allows missing partitions, a daily asset
feeding a weekly one (TimeWindowPartitionMapping) and a static mapping onto several partitions.

The partitioned assets are materialized by runs of their own (``colors``, ``days``, ``regions``:
one run a partition), as their own DAGs would; the jobs that read them run afterwards.
"""

import dagster as dg

COLORS = dg.StaticPartitionsDefinition(["red", "green", "blue"])
# The partition of shade that is never materialized.
MISSING_SHADE = "blue"


@dg.asset(partitions_def=COLORS)
def paint(context: dg.AssetExecutionContext) -> str:
    return f"{context.partition_key} paint"


@dg.asset(partitions_def=COLORS)
def shade(context: dg.AssetExecutionContext) -> int:
    return len(context.partition_key)


@dg.asset
def palette(paint: dict) -> list:
    """Every partition of paint, by partition key."""
    return sorted(paint.items())


@dg.asset_check(asset=paint)
def paint_has_every_color(paint: dict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=sorted(paint) == sorted(COLORS.get_partition_keys()))


@dg.asset
def shades(shade: dict) -> int:
    """Fails to load: a partition of shade was never materialized."""
    return sum(shade.values())


@dg.asset(ins={"shade": dg.AssetIn(metadata={"allow_missing_partitions": True})})
def tolerant_shades(shade: dict) -> list:
    return sorted(shade.items())


DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-15")
WEEKLY = dg.WeeklyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-15", day_offset=1)


@dg.asset(partitions_def=DAILY)
def day(context: dg.AssetExecutionContext) -> int:
    return int(context.partition_key[-2:])


@dg.asset(
    partitions_def=WEEKLY,
    ins={"day": dg.AssetIn(partition_mapping=dg.TimeWindowPartitionMapping())},
)
def week(day: dict) -> list:
    """The seven days of the week's partition."""
    return sorted(day.items())


@dg.asset(partitions_def=WEEKLY)
def last_day_of_week(context: dg.AssetExecutionContext, day: dict) -> int:
    """The default mapping of a daily asset into a weekly one: the week's days."""
    return max(day.values())


REGIONS = dg.StaticPartitionsDefinition(["north", "south", "east", "west"])
SIDES = dg.StaticPartitionsDefinition(["north_south", "east_west"])
SIDE_OF = {"north": "north_south", "south": "north_south", "east": "east_west", "west": "east_west"}


@dg.asset(partitions_def=REGIONS)
def region(context: dg.AssetExecutionContext) -> str:
    return context.partition_key.upper()


@dg.asset(
    partitions_def=SIDES,
    ins={"region": dg.AssetIn(partition_mapping=dg.StaticPartitionMapping(SIDE_OF))},
)
def side(region: dict) -> list:
    return sorted(region.items())


colors = dg.define_asset_job(
    "colors", selection=dg.AssetSelection.assets(paint, shade).without_checks()
)
spanning = dg.define_asset_job(
    "spanning",
    selection=dg.AssetSelection.assets(palette, shades, tolerant_shades)
    | dg.AssetSelection.checks(paint_has_every_color),
)
days = dg.define_asset_job("days", selection=[day])
weeks = dg.define_asset_job("weeks", selection=[week, last_day_of_week])
regions = dg.define_asset_job("regions", selection=[region])
sides = dg.define_asset_job("sides", selection=[side])

defs = dg.Definitions(
    assets=[
        paint,
        shade,
        palette,
        shades,
        tolerant_shades,
        day,
        week,
        last_day_of_week,
        region,
        side,
    ],
    asset_checks=[paint_has_every_color],
    jobs=[colors, spanning, days, weeks, regions, sides],
)
