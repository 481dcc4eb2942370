"""The `dagster-airflow` command. Each subcommand is a module of this folder, its parser beside
its handler, and imports only the side it needs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dagster_airflow.cli import (
    check,
    compare,
    evaluate_sensor,
    execute_step,
    install,
    plugins,
    results,
    scaffold,
    servers,
)
from dagster_airflow.distribution import retired_package_problem
from dagster_airflow.errors import EXIT_USAGE, DagsterAirflowError

COMMANDS = (
    scaffold,
    install,
    plugins,
    check,
    results,
    servers,
    compare,
    execute_step,
    evaluate_sensor,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dagster-airflow",
        description="Run Dagster jobs on Apache Airflow: one Airflow task per execution step.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    retired = retired_package_problem()
    if retired:
        print(f"dagster-airflow: warning: {retired}", file=sys.stderr)
    try:
        return args.handler(args, argv)
    except DagsterAirflowError as exc:
        print(f"dagster-airflow {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
