"""`dagster-airflow check`: does a scaffolded DAG file still match its job, does a dags folder
hold a DAG for each job of its code locations (for CI)?"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from dagster_airflow.cli.location import add_location_flags, located, location_of_all
from dagster_airflow.errors import ConfigurationError


def add_parser(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser(
        "check",
        help="check that scaffolded DAG files still match their jobs (for CI)",
        description="Compile the job a scaffolded DAG file names, with the file's code location "
        "and run config, and print one line per difference (steps, edges, config schema, "
        "partitions, retry policies). Given a dags folder (or a code location with -f, -m or "
        "-w), print one line per new job (no DAG), gone job (a DAG whose job is no more) and "
        "drifted job. Exit status 1 when there is one.",
    )
    check.add_argument(
        "path",
        metavar="DAG_FILE_OR_FOLDER",
        nargs="?",
        help="a scaffolded DAG file, or a dags folder (default with -f, -m or -w: --dags-folder)",
    )
    add_location_flags(check)
    check.add_argument(
        "--dags-folder", help="with -f, -m or -w (default: Airflow's, $AIRFLOW_HOME/dags)"
    )
    check.set_defaults(handler=run)


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    if args.path and Path(args.path).is_file():
        if located(args):
            raise ConfigurationError(
                f"{args.path!r} is a DAG file, which names its own code location; leave out "
                "-f, -m and -w, or give a dags folder."
            )
        return _check_file(args.path)
    if args.path is None and not located(args):
        raise ConfigurationError(
            "nothing to check; give a scaffolded DAG file, a dags folder, or a code location "
            "(-f, -m or -w) to check against Airflow's dags folder."
        )
    return _check_folder(args)


def _check_file(path: str) -> int:
    from dagster_airflow.scaffold.check import check_dag_file

    drift = check_dag_file(path)
    for line in drift:
        print(line)
    if drift:
        print(
            f"{path}: {len(drift)} difference(s) from job; scaffold it again "
            "(the command is the file's SCAFFOLD_COMMAND)."
        )
        return 1
    print(f"{path}: matches its job.")
    return 0


def _check_folder(args: argparse.Namespace) -> int:
    from dagster_airflow.files import dags_folder
    from dagster_airflow.scaffold.check_folder import check_folder

    if args.path:
        folder = Path(args.path)
        if not folder.exists():
            raise ConfigurationError(
                f"{args.path!r} does not exist; give a scaffolded DAG file or a dags folder."
            )
    elif args.dags_folder:
        folder = Path(args.dags_folder).expanduser()
    else:
        folder = dags_folder()
    location = location_of_all(args, "check") if located(args) else None
    found = check_folder(folder, location)
    for line in found.lines:
        print(line)
    if found.findings:
        print(
            f"{folder}: {found.new} new, {found.gone} gone and {found.drifted} drifted job(s); "
            "scaffold the new and drifted ones (--all --install does all), delete the gone ones."
        )
        return 1
    print(f"{folder}: {found.matching} DAG(s) match their jobs, and every job has its DAG.")
    return 0
