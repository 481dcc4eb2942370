"""Jobs the real-deployment tests run (tests/e2e/test_deployment_*.py): one code location, so one
step server serves every step of a deployment.

Each op's output says which process made it, so a test can tell a rerun from a stored output.
"""

import os
import time
from pathlib import Path

import dagster as dg


@dg.op(config_schema={"seed": dg.Field(int, default_value=0)})
def first(context: dg.OpExecutionContext) -> dict:
    return {"seed": context.op_config["seed"], "first_pid": os.getpid()}


@dg.op
def middle(first: dict) -> dict:
    return {**first, "middle_pid": os.getpid()}


@dg.op
def last(middle: dict) -> dict:
    return {**middle, "last_pid": os.getpid()}


@dg.job
def chain():
    last(middle(first()))


@dg.op(retry_policy=dg.RetryPolicy(max_retries=1))
def flaky(context: dg.OpExecutionContext) -> int:
    if context.retry_number == 0:
        raise ValueError("flaky fails its first try")
    return context.retry_number


@dg.job
def flaky_job():
    flaky()


@dg.op(config_schema={"pid_file": dg.Field(str, default_value="")})
def sleeper(context: dg.OpExecutionContext) -> None:
    """Writes its pid where the run's conf says, then sleeps until it is stopped."""
    if context.op_config["pid_file"]:
        Path(context.op_config["pid_file"]).write_text(str(os.getpid()))
    time.sleep(600)


@dg.job
def sleepy():
    sleeper()


@dg.op
def source() -> int:
    return 3


@dg.op
def double(n: int) -> int:
    return 2 * n


@dg.op
def square(n: int) -> int:
    return n * n


@dg.op
def total(doubled: int, squared: int) -> int:
    return doubled + squared


@dg.job
def routed():
    """Four steps for two Celery queues."""
    n = source()
    total(double(n), square(n))


defs = dg.Definitions(jobs=[chain, flaky_job, sleepy, routed])
