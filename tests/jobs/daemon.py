"""A job whose op starts a daemon the classic way (double fork, ``setsid``, standard streams on
/dev/null), which a process-group kill never reaches, then succeeds, fails or sleeps."""

import os
import time
from pathlib import Path

import dagster as dg


def start_daemon() -> int:
    """Double-fork a ``sleep`` in a session of its own; its pid once it runs."""
    read_end, write_end = os.pipe()
    first = os.fork()
    if first == 0:  # the first child: a new session, then the daemon, then gone
        try:
            os.setsid()
            if os.fork() == 0:
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                os.write(write_end, str(os.getpid()).encode())
                os.execv("/bin/sleep", ["sleep", "3600"])  # the pipe's ends close at exec
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(first, 0)
    with os.fdopen(read_end) as pipe:
        return int(pipe.read())


@dg.op(config_schema={"pid_file": str, "then": str})
def spawn_daemon(context: dg.OpExecutionContext) -> None:
    pid = start_daemon()
    pid_file = Path(context.op_config["pid_file"])
    pid_file.with_suffix(".tmp").write_text(str(pid))
    pid_file.with_suffix(".tmp").replace(pid_file)  # whole, or not there
    context.log.info(f"started daemon {pid} from step process {os.getpid()}")
    then = context.op_config["then"]
    if then == "fail":
        raise ValueError("the op failed after starting a daemon")
    if then == "sleep":
        time.sleep(3600)


@dg.job
def daemon():
    spawn_daemon()
