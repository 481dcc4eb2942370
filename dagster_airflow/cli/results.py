"""`dagster-airflow results`: what a DAG run's steps wrote, read from the DAG's storage."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from dagster_airflow.errors import ConfigurationError


def add_parser(commands: argparse._SubParsersAction) -> None:
    found = commands.add_parser(
        "results",
        help="list what a DAG run's steps wrote, by the Airflow run id; --show one value",
        description="List each step of one Airflow DAG run with its outputs (URI, size, when "
        "written) and its event log, read from the storage the DAG's scaffolded file names, "
        "with the credentials of its Airflow connection.",
    )
    found.add_argument("dag_id", metavar="DAG_ID", help="the Airflow DAG id")
    found.add_argument(
        "run_id", metavar="RUN_ID", help="the Airflow run id: manual__... or scheduled__..."
    )
    found.add_argument(
        "--show",
        metavar="STEP[.OUTPUT]",
        help="print one output's value (unpickled here; default output: the step's only one, "
        "or result), or STEP.events for its event log",
    )
    found.add_argument("--json", action="store_true", help="print JSON instead of a table")
    found.add_argument("--dag-file", help="the DAG's scaffolded file (default: found by DAG id)")
    found.add_argument(
        "--dags-folder", help="where to look for it (default: Airflow's, $AIRFLOW_HOME/dags)"
    )
    found.set_defaults(handler=run)


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    import json
    import logging

    from dagster_airflow.files import dags_folder
    from dagster_airflow.scaffold import results
    from dagster_airflow.task.connections import get_connection

    if args.dag_file:
        dag = results.read_dag_file(Path(args.dag_file).expanduser())
        if dag.dag_id != args.dag_id:
            raise ConfigurationError(
                f"the DAG file {args.dag_file!r} defines DAG {dag.dag_id!r}, not "
                f"{args.dag_id!r}; pass that DAG's id or its own file."
            )
    else:
        folder = Path(args.dags_folder).expanduser() if args.dags_folder else dags_folder()
        dag = results.find_dag_file(args.dag_id, folder)
    storage = dag.storage()
    with results.credentials(storage, get_connection):
        # Reading a connection through Airflow configures its logging at INFO: keep the SDKs'
        # chatter ("Found credentials in environment variables") out of the command's output.
        logging.getLogger().setLevel(logging.WARNING)
        run = results.run_results(dag, args.run_id, storage)
        if args.show:
            return _show(run, storage, args)
    text = json.dumps(run.to_dict(), indent=2) + "\n" if args.json else results.table(run)
    sys.stdout.write(text)
    return 0


def _show(run, storage, args: argparse.Namespace) -> int:
    """`results --show STEP[.OUTPUT]`: one output's value, or STEP.events: its event log."""
    import json
    import pprint

    from dagster_airflow.scaffold import results

    step, output = run.find(args.show)
    if output == results.EVENTS:
        events = [results.event_dict(e) for e in step.events]
        sys.stdout.write(
            json.dumps(events, indent=2) + "\n" if args.json else results.events_text(step)
        )
        return 0
    stored = step.output(output)
    print(
        f"Unpickling {stored.uri} in this Python ({sys.executable}); its classes must be "
        "importable here, and unpickle only from a storage you trust.",
        file=sys.stderr,
    )
    key = storage.key(run.dagster_run_id, step.step_key, stored.name)
    value = results.load_value(storage, stored, key, run.dag)
    if args.json:
        print(json.dumps({**stored.to_dict(), "value": results.jsonable(value)}, indent=2))
    else:
        print(pprint.pformat(value, width=99, sort_dicts=False))
    return 0
