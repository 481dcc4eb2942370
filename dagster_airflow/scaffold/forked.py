"""Run the user's code (importing a code location) in a forked child, so that whatever it does
at import reaches the scaffold as one sentence, and never its output.

The child's standard output is its standard error: a module that prints at import cannot
corrupt a DAG file written to standard output. The child sends JSON lines back through a pipe:
notes as it goes (``note({...})``), then its result or its error. A module that calls
``sys.exit`` or ``os._exit``, or dies of a signal, is reported as such; so is any other end
without a result.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

from dagster_airflow import errors
from dagster_airflow.errors import CodeLocationError, DagsterAirflowError


def _child(function: Callable[[Callable[[dict], None]], Any], write_fd: int) -> None:
    stream = os.fdopen(write_fd, "w", encoding="utf-8")

    def send(message: dict) -> None:
        stream.write(json.dumps(message) + "\n")
        stream.flush()

    try:
        os.dup2(2, 1)
        send({"result": function(lambda note: send({"note": note}))})
    except DagsterAirflowError as exc:
        send({"error": str(exc), "class": type(exc).__name__})
    except SystemExit as exc:
        send({"exit": exc.code if exc.code is None or isinstance(exc.code, int) else str(exc.code)})
    except BaseException as exc:  # a bug of ours, or Ctrl-C: the traceback is for a report
        traceback.print_exc()
        send({"crash": f"{type(exc).__name__}: {exc}"})
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _end(status: int) -> tuple[str, str]:
    """How the child ended with no word, and the fix."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        return f"was killed by signal {name}", "import it with python to see why, and fix it"
    code = os.waitstatus_to_exitcode(status)
    return (
        f"ended the process with exit status {code} (os._exit)",
        "remove that call from its top level, or guard it with if __name__ == '__main__'",
    )


def call_in_child(
    function: Callable[[Callable[[dict], None]], Any], what: Callable[[list[dict]], str]
) -> Any:
    """``function(note)``'s JSON-able result, computed in a forked child. ``what(notes)`` names
    what was being loaded, from the notes the child sent, for the sentence on an early end."""
    if not hasattr(os, "fork"):  # Windows: in process, as before
        return function(lambda note: None)
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(function, write_fd)
    os.close(write_fd)
    with os.fdopen(read_fd, encoding="utf-8") as stream:
        lines = stream.read().splitlines()
    _, status = os.waitpid(pid, 0)
    messages = []
    for line in lines:
        try:
            messages.append(json.loads(line))
        except ValueError:
            continue
    notes = [m["note"] for m in messages if "note" in m]
    last = messages[-1] if messages else {}
    if "result" in last:
        return last["result"]
    if "error" in last:
        kind = getattr(errors, last["class"], None)
        if not (isinstance(kind, type) and issubclass(kind, DagsterAirflowError)):
            kind = DagsterAirflowError
        raise kind(last["error"])
    if "exit" in last:
        raise CodeLocationError(
            f"{what(notes)} called sys.exit({last['exit']!r}) while it was loaded, so no DAG was "
            "written; remove that call from its top level, or guard it with "
            "if __name__ == '__main__'."
        )
    if "crash" in last:
        raise CodeLocationError(
            f"the scaffold failed while loading {what(notes)} ({last['crash']}); this is a bug "
            "in dagster-airflow, please report it with the traceback above."
        )
    ended, fix = _end(status)
    raise CodeLocationError(
        f"{what(notes)} {ended} while it was loaded, so no DAG was written; {fix}."
    )
