"""The small job the runner contract runs: produce -> consume, a failing op and a slow one."""

import os
import time

import dagster as dg

# A variable of the job's environment (a DAG's ENVIRONMENT) that the contract hands the step.
CONTRACT_VARIABLE = "DAGSTER_AIRFLOW_CONTRACT_PASSWORD"


@dg.op
def produce(context: dg.OpExecutionContext) -> int:
    value = os.environ.get(CONTRACT_VARIABLE, "")
    context.log.info(f"{CONTRACT_VARIABLE} has {len(value)} characters: {value}")
    return 21


@dg.op
def consume(context: dg.OpExecutionContext, value: int) -> int:
    context.log.info(f"consumed {value} * 2")
    return value * 2


@dg.op
def fail() -> None:
    raise ValueError("contract failure 7")


@dg.op(config_schema={"seconds": int})
def slow(context: dg.OpExecutionContext) -> None:
    context.log.info(f"slow op sleeping for {context.op_config['seconds']} s")
    time.sleep(context.op_config["seconds"])


@dg.job
def contract():
    consume(produce())
    fail()
    slow()
