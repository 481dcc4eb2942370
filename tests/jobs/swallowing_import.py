"""A code location whose import catches everything around its slow part, as careless code does:
a stop that comes while it loads is swallowed there. It writes its process id to
$SLOW_IMPORT_PID_FILE, then sleeps; its op writes $RAN_FILE, so a test sees whether it ran."""

import os
import time
from pathlib import Path

import dagster as dg

Path(os.environ["SLOW_IMPORT_PID_FILE"]).write_text(str(os.getpid()))
try:  # noqa: SIM105 (written as careless code writes it)
    time.sleep(600)
except:  # noqa: E722 (the careless code this module stands for)
    pass


@dg.op
def noop() -> None:
    Path(os.environ["RAN_FILE"]).write_text("ran")


@dg.job
def swallowing_import():
    noop()
