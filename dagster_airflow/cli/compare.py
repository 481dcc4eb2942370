"""`dagster-airflow compare`: a job through Airflow and through Dagster, every difference listed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from dagster_airflow.cli.location import add_location_flags, code_location


def add_parser(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser(
        "compare",
        help="run a job through Airflow and through Dagster, and list every difference",
        description="Scaffold the job, run its DAG once with `airflow dags test` in a throwaway "
        "Airflow home, run the job with Dagster in process, and print every difference in step "
        "outcomes, attempts, outputs, hooks, materializations and asset checks (exit status 1 "
        "when there is one). See docs/semantics.md.",
    )
    compare.add_argument("job", metavar="JOB", help="the Dagster job's name")
    compare.add_argument(
        "-e", "-c", "--config", action="append", default=[], metavar="RUN_CONFIG_YAML"
    )
    add_location_flags(compare, required=True)
    compare.add_argument("--runner", default="subprocess", help="as for scaffold")
    compare.add_argument("--runner-option", action="append", default=[], metavar="KEY=VALUE")
    compare.add_argument(
        "--airflow-home", help="an Airflow home to run in (default: a new temporary one)"
    )
    compare.set_defaults(handler=run)


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from dagster_airflow.job.compile import load_run_config
    from dagster_airflow.testing.airflow_home import AirflowHome
    from dagster_airflow.testing.compare import compare_job

    home = AirflowHome(Path(args.airflow_home)) if args.airflow_home else None
    scaffold_options = [f"--runner={args.runner}"] + [
        f"--runner-option={o}" for o in args.runner_option
    ]
    report = compare_job(
        code_location(args, args.job),
        args.job,
        load_run_config(args.config),
        scaffold_options=scaffold_options,
        airflow_home=home,
    )
    print(report)
    if not report.matches:
        print(f"Both runs' storages and the DAG are in {report.work_dir}", file=sys.stderr)
    return 0 if report.matches else 1
