"""A job whose op changes what a step could leak to the next one, and reports what it found."""

import os
import tempfile
import threading
import time
from pathlib import Path

import dagster as dg

SEEN_BY_STEPS: list[int] = []  # a module global each step appends to
LEFT_OPEN = "left-open-by-a-step-"  # a file each step opens and never closes (removed at once)
OPEN_FILES: list[int] = []  # their descriptors
LOADED_IN_PID = os.getpid()  # module-level code: runs once, in the step server


def open_files(name: str) -> list[int]:
    """The descriptors of this process open on a file whose name has ``name``."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if name in os.readlink(f"/proc/self/fd/{fd}"):
                found.append(int(fd))
        except OSError:
            continue
    return found


@dg.op(config_schema={"pid_file": dg.Field(str, default_value=""), "seconds": int})
def mutate(context: dg.OpExecutionContext) -> dict:
    found = {
        "global": list(SEEN_BY_STEPS),
        "env": os.environ.get("SET_BY_A_STEP"),
        "secret": os.environ.get("ISOLATION_SECRET"),
        "cwd": os.getcwd(),
        "pid": os.getpid(),
        "loaded_in_pid": LOADED_IN_PID,
        "threads": sorted(t.name for t in threading.enumerate()),
        "open_files": open_files(LEFT_OPEN),
        "airflow": sorted(k for k in os.environ if k.startswith("AIRFLOW__")),
    }
    context.log.info(f"isolation report: {found!r}")
    SEEN_BY_STEPS.append(os.getpid())
    os.environ["SET_BY_A_STEP"] = str(os.getpid())
    threading.Thread(target=time.sleep, args=(3600,), name="left-behind", daemon=True).start()
    fd, path = tempfile.mkstemp(prefix=LEFT_OPEN)
    os.unlink(path)
    OPEN_FILES.append(fd)
    if context.op_config["pid_file"]:
        Path(context.op_config["pid_file"]).write_text(str(os.getpid()))
    time.sleep(context.op_config["seconds"])
    return found


@dg.job
def isolation():
    mutate()
