"""The entry of a step's process (Dagster side): read the step request, run the step, end the
process. `dagster-airflow execute-step` (a fresh process, a container, an ECS task) and the step
server's forked step both call ``main``; neither goes through the other."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dagster_airflow.errors import EXIT_USAGE, ConfigurationError, DagsterAirflowError
from dagster_airflow.model import REQUEST_ENV_VAR
from dagster_airflow.worker import interrupts


def read_request(request_file: str | None) -> str:
    """The step request's JSON: from a file, standard input ("-") or the request variable."""
    if request_file == "-":
        return sys.stdin.read()
    if request_file:
        try:
            return Path(request_file).read_text()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the step request {request_file!r}: {exc.strerror}."
            ) from exc
    text = os.environ.get(REQUEST_ENV_VAR, "")
    if not text:
        raise ConfigurationError(
            f"no step request: set {REQUEST_ENV_VAR} to its JSON, or pass --request-file."
        )
    return text


def main(request_file: str | None = None) -> int:
    """Run the step and end the process with its exit code (returns only to type checkers)."""
    from dagster_airflow.worker.execute import execute_step

    try:
        text = read_request(request_file)
    except DagsterAirflowError as exc:
        print(f"dagster-airflow execute-step: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # SIGTERM (a runner's kill, `docker stop`, ECS stopping the task) interrupts the step as
    # Ctrl-C would, from now on: in the seconds before Dagster's execution (importing Dagster,
    # loading the code location) the worker would otherwise die without a word, or, as a
    # container's PID 1, ignore SIGTERM until SIGKILL. Either way the step is reported as
    # stopped and its event log is written.
    interrupts.install()
    code = execute_step(text)
    exit_now(code)
    return code  # not reached


def exit_now(code: int) -> None:
    """End the worker without Python's module teardown, which takes about a second once Dagster
    is loaded, as Dagster's own multiprocess step workers end (multiprocessing exits with
    os._exit). Everything the step wrote is committed by now; atexit handlers (the user's too),
    logging and standard streams are still run and flushed first."""
    import atexit
    import logging

    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
