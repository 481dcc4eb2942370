"""A code location that takes its time to import, as one that loads a model or a large config
may: it writes its process id to $SLOW_IMPORT_PID_FILE, then sleeps."""

import os
import time
from pathlib import Path

import dagster as dg

Path(os.environ["SLOW_IMPORT_PID_FILE"]).write_text(str(os.getpid()))
time.sleep(600)


@dg.op
def noop() -> None:
    pass


@dg.job
def slow_import():
    noop()
