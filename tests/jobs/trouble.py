"""A job whose steps fail, skip and hang, for testing what Airflow makes of each."""

import os
import time
from pathlib import Path

import dagster as dg


@dg.op
def fine() -> int:
    return 41


@dg.op
def boom(context: dg.OpExecutionContext, value: int) -> int:
    context.log.info("about to fail")
    if value != 42:
        raise ValueError(f"the answer is not {value}")
    return value


@dg.op
def after_boom(value: int) -> int:
    return value


@dg.op(out={"produced": dg.Out(is_required=False), "missing": dg.Out(is_required=False)})
def maybe():
    yield dg.Output("here", "produced")


@dg.op
def after_produced(value: str) -> str:
    return value.upper()


@dg.op
def after_missing(value: str) -> str:
    return value


@dg.op(config_schema={"pid_file": str, "seconds": int})
def sleepy(context: dg.OpExecutionContext) -> None:
    Path(context.op_config["pid_file"]).write_text(str(os.getpid()))
    time.sleep(context.op_config["seconds"])


@dg.job
def trouble():
    after_boom(boom(fine()))
    produced, missing = maybe()
    after_produced(produced)
    after_missing(missing)
    sleepy()
