"""A job for deferral on a real deployment: a slow step a triggerer follows, and a step that
reads its output."""

import time

import dagster as dg


@dg.op(config_schema={"seconds": int})
def slow_count(context: dg.OpExecutionContext) -> int:
    context.log.info("counting slowly")
    time.sleep(context.op_config["seconds"])
    context.log.info("counted")
    return 42


@dg.op
def report(context: dg.OpExecutionContext, count: int) -> str:
    context.log.info(f"The count is {count}")
    return f"counted {count}"


@dg.job
def slow_then_report():
    report(slow_count())
