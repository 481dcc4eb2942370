"""A step that ignores SIGTERM, as an op that traps it for its own cleanup and never ends may:
it writes its process id to its pid_file, then sleeps. Only a SIGKILL stops it."""

import os
import signal
import time
from pathlib import Path

import dagster as dg


@dg.op(config_schema={"pid_file": str})
def stubborn(context: dg.OpExecutionContext) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Path(context.op_config["pid_file"]).write_text(str(os.getpid()))
    time.sleep(600)


@dg.job
def stubborn_job():
    stubborn()
