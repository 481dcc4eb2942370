"""A job whose op registers an atexit handler: the worker must still run it."""

import atexit
from pathlib import Path

import dagster as dg


@dg.op(config_schema={"marker": str})
def register_cleanup(context: dg.OpExecutionContext) -> None:
    marker = Path(context.op_config["marker"])
    atexit.register(marker.write_text, "cleaned up")


@dg.job
def cleanup():
    register_cleanup()
