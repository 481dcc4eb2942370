"""A job whose one op logs the names of the environment variables with a given prefix."""

import os

import dagster as dg


@dg.op(config_schema={"prefix": str})
def env_dump(context: dg.OpExecutionContext) -> None:
    prefix = context.op_config["prefix"]
    names = sorted(k for k in os.environ if k.startswith(prefix))
    context.log.info(f"variables starting with {prefix!r}: {names}")


@dg.job
def env_dump_job():
    env_dump()
