"""`dagster-airflow evaluate-sensor`: what a sensor DAG's task starts to evaluate one tick."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def add_parser(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "evaluate-sensor",
        help="evaluate one tick of a Dagster sensor (what a sensor DAG runs; not for direct use)",
        description="Read a sensor tick's request (code location, sensor, cursor) as JSON on "
        "standard input, evaluate the sensor once and print its run requests, skip reason and "
        "cursor as one JSON line.",
    )
    evaluate.set_defaults(handler=run)


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from dagster_airflow.worker.sensor import main

    return main(sys.stdin.read())
