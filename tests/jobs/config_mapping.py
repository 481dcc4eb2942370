"""Jobs whose run config is not the ops' config as written: a ConfigMapping, defaults given by
the job (`RunConfig`, pythonic `Config`), and partitioned configs."""

from datetime import datetime

import dagster as dg


class RepeatConfig(dg.Config):
    word: str = "ab"
    times: int = 2


@dg.op
def repeat(config: RepeatConfig) -> str:
    return config.word * config.times


@dg.op
def count(text: str) -> int:
    return len(text)


def _simplified(config: dict) -> dict:
    return {"ops": {"repeat": {"config": {"word": config["word"], "times": config["times"]}}}}


@dg.job(config=dg.ConfigMapping(config_fn=_simplified, config_schema={"word": str, "times": int}))
def mapped():
    """Its run config is {"word": ..., "times": ...}, mapped onto the op's config."""
    count(repeat())


@dg.job(config=dg.RunConfig(ops={"repeat": RepeatConfig(word="xyz", times=3)}))
def default_config():
    """Runs with no run config: the job's own."""
    count(repeat())


@dg.job
def pythonic_defaults():
    """Runs with no run config: the defaults of the op's Config class."""
    count(repeat())


@dg.static_partitioned_config(partition_keys=["north", "south"])
def by_region(partition_key: str) -> dict:
    return {"ops": {"repeat": {"config": {"word": partition_key, "times": 1}}}}


@dg.job(config=by_region)
def static_partitioned():
    count(repeat())


@dg.daily_partitioned_config(start_date=datetime(2024, 1, 1))
def by_day(start: datetime, _end: datetime) -> dict:
    return {"ops": {"repeat": {"config": {"word": start.strftime("%Y%m%d"), "times": 1}}}}


@dg.job(config=by_day)
def daily_partitioned():
    count(repeat())


@dg.op(config_schema={"region": str})
def region_name(context: dg.OpExecutionContext) -> str:
    return context.op_config["region"]


@dg.static_partitioned_config(partition_keys=["north", "south"])
def region_only(partition_key: str) -> dict:
    return {"ops": {"region_name": {"config": {"region": partition_key}}}}


@dg.job(config=region_only)
def needs_a_partition():
    """Its op's config has no default: without a partition there is no run config to plan with."""
    region_name()


defs = dg.Definitions(
    jobs=[
        mapped,
        default_config,
        pythonic_defaults,
        static_partitioned,
        daily_partitioned,
        needs_a_partition,
    ]
)
