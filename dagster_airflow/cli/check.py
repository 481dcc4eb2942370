"""`dagster-airflow check`: does a scaffolded DAG file still match its job (for CI)?"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def add_parser(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser(
        "check",
        help="check that a scaffolded DAG file still matches its job (for CI)",
        description="Compile the job a scaffolded DAG file names, with the file's code location "
        "and run config, and print one line per difference (steps, edges, config schema, "
        "partitions, retry policies); exit status 1 when there is one.",
    )
    check.add_argument("dag_file", metavar="DAG_FILE", help="the scaffolded DAG file")
    check.set_defaults(handler=run)


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from dagster_airflow.scaffold.check import check_dag_file

    drift = check_dag_file(args.dag_file)
    for line in drift:
        print(line)
    if drift:
        print(
            f"{args.dag_file}: {len(drift)} difference(s) from job; scaffold it again "
            "(the command is the file's SCAFFOLD_COMMAND)."
        )
        return 1
    print(f"{args.dag_file}: matches its job.")
    return 0
