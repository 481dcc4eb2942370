"""A job for the container runners: what the step's environment holds, a failure and a hang."""

import os
import time

import dagster as dg


@dg.op
def show_environment(context: dg.OpExecutionContext) -> str:
    context.log.info(f"PUBLIC_SETTING is {os.environ.get('PUBLIC_SETTING')}")
    context.log.info(f"DEMO_TOKEN is {os.environ.get('DEMO_TOKEN')}")
    # A job's variable (the DAG's ENVIRONMENT): its length shows it arrived, the value is masked.
    password = os.environ.get("WAREHOUSE_PASSWORD", "")
    context.log.info(f"WAREHOUSE_PASSWORD is {password} ({len(password)} characters)")
    return os.environ.get("DEMO_TOKEN", "")


@dg.op
def boom(context: dg.OpExecutionContext) -> None:
    context.log.info("about to fail")
    raise ValueError("the container step failed on purpose")


@dg.op(config_schema={"seconds": int})
def sleepy(context: dg.OpExecutionContext) -> None:
    context.log.info("sleeping")
    time.sleep(context.op_config["seconds"])


@dg.job
def containers():
    show_environment()
    boom()
    sleepy()
