"""`dagster-airflow execute-step`: what a runner starts in the step's process."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from dagster_airflow.model import REQUEST_ENV_VAR


def add_parser(commands: argparse._SubParsersAction) -> None:
    execute = commands.add_parser(
        "execute-step",
        help="execute one step of a job (what a runner starts; not for direct use)",
        description=f"Execute the step a StepRequest describes (from ${REQUEST_ENV_VAR} or "
        "--request-file) and print its events as JSON lines.",
    )
    execute.add_argument("--request-file", help="a file with the request's JSON, or - for stdin")
    execute.set_defaults(handler=run)


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from dagster_airflow.worker.entry import main as run_step

    return run_step(args.request_file)
