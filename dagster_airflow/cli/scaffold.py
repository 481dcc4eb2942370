"""`dagster-airflow scaffold`: a Dagster job -> an Airflow DAG file, printed or --install-ed."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster_airflow.cli.backends import runner_and_storage
from dagster_airflow.cli.location import (
    add_location_flags,
    code_location,
    located,
    named_job,
    named_jobs,
)
from dagster_airflow.errors import ConfigurationError
from dagster_airflow.files import dags_folder


def add_parser(commands: argparse._SubParsersAction) -> None:
    scaffold = commands.add_parser(
        "scaffold",
        help="write an Airflow DAG file for a Dagster job",
        description="Compile a Dagster job's execution plan with its run config and print an "
        "Airflow DAG file with one DagsterOperator per step (or --install it).",
    )
    scaffold.add_argument("job", metavar="JOB", nargs="?", help="the Dagster job's name")
    scaffold.add_argument(
        "-j",
        "--job",
        dest="job_option",
        action="append",
        metavar="JOB",
        help="the job's name, as Dagster spells it; repeat it for several jobs (with --install)",
    )
    scaffold.add_argument(
        "--all",
        dest="all_jobs",
        action="store_true",
        help="every job of the code location, one DAG each as -j JOB writes it (with --install)",
    )
    scaffold.add_argument(
        "-e",
        "-c",
        "--config",
        action="append",
        default=[],
        metavar="RUN_CONFIG_YAML",
        help="a run config YAML file; repeat to merge several, later files winning",
    )
    add_location_flags(scaffold)
    scaffold.add_argument(
        "--image-code-root",
        metavar="PATH",
        help="for container runners: where the image has the working directory (-d, default: "
        "the current one); the DAG names the code location by its paths inside the image",
    )
    scaffold.add_argument(
        "--runner", default="subprocess", help="where steps run (default: %(default)s)"
    )
    scaffold.add_argument(
        "--runner-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a runner option; VALUE is read as YAML (5, true, {a: b})",
    )
    scaffold.add_argument("--storage", help="where outputs go (default: the runner's default)")
    scaffold.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a storage option; VALUE is read as YAML",
    )
    scaffold.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a variable the job reads (EnvVar, {env: NAME}), given to every step; VALUE is "
        "text or an Airflow template such as '{{ conn.warehouse.password }}' (docs/security.md)",
    )
    scaffold.add_argument("--dag-id", help="the Airflow DAG id (default: the job's name)")
    scaffold.add_argument(
        "--queue",
        help="the executor queue of every task, in DEFAULT_ARGS (CeleryExecutor: the workers "
        "listening on it; default: the executor's)",
    )
    scaffold.add_argument(
        "--step-queue",
        action="append",
        default=[],
        metavar="STEP=QUEUE",
        help="the queue of one step's task (its step key or task id); repeat for several",
    )
    scaffold.add_argument(
        "--asset-uri",
        default="dagster://asset/{key}",
        metavar="TEMPLATE",
        help="the Airflow Asset URI of a Dagster asset, {key} its key as a/b "
        "(default: %(default)s)",
    )
    scaffold.add_argument(
        "--schedule-on-assets",
        action="store_true",
        help="run the DAG when the assets it reads (materialized by other DAGs) are updated, "
        "instead of on the partitions' schedule",
    )
    scaffold.add_argument(
        "--dagster-home",
        metavar="PATH",
        help="the team's Dagster home, as each step sees it: each DAG run is one Dagster run in "
        "the instance its dagster.yaml names (default: an ephemeral instance per step)",
    )
    scaffold.add_argument(
        "--dagster-ui-url",
        metavar="URL",
        help="with --dagster-home: the team's Dagster UI, where the tasks' links open the run",
    )
    scaffold.add_argument(
        "--schedule",
        metavar="NAME",
        help="the job's Dagster schedule the DAG follows, when it has several ('none': no "
        "schedule; default: its only one)",
    )
    scaffold.add_argument(
        "--install",
        action="store_true",
        help="write {dag_id}.py into the dags folder instead of printing it",
    )
    scaffold.add_argument(
        "--force",
        action="store_true",
        help="with --install: replace a file that holds another DAG, or not a scaffolded one",
    )
    scaffold.add_argument(
        "--dags-folder", help="with --install (default: Airflow's, $AIRFLOW_HOME/dags)"
    )
    scaffold.set_defaults(handler=run)


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from dagster_airflow.job.compile import load_run_config
    from dagster_airflow.job.discovery import discover
    from dagster_airflow.scaffold.environment import environment_flags
    from dagster_airflow.scaffold.forked import call_in_child
    from dagster_airflow.scaffold.install import check_dag_id, install_dag
    from dagster_airflow.scaffold.render import command_line

    if args.all_jobs or len(named_jobs(args)) > 1:
        from dagster_airflow.cli.scaffold_all import run_many

        return run_many(args, argv, _scaffolded_dag, _loaded_what)
    job_name = named_job(args)
    dag_id = check_dag_id(args.dag_id or job_name)
    if located(args):
        code_location(args, job_name)  # its checks of the paths given; it imports nothing
    else:
        discover()  # its sentence when there is nothing to find; it imports nothing
    runner, storage = runner_and_storage(args)
    run_config = load_run_config(args.config)
    environment_flags(args.env)  # its sentence before the code location is loaded
    command = command_line(argv)
    if not located(args):
        # Found in the working directory: scaffolding again must start there too.
        command = f"cd {shlex.quote(str(Path.cwd()))} && {command}"
    step_queues = _step_queues(args.step_queue)
    folder = None
    if args.install:
        folder = Path(args.dags_folder).expanduser() if args.dags_folder else dags_folder()

    def scaffolded(note) -> dict[str, Any]:
        # In a forked child: the user's code is imported here, and what it prints at import
        # goes to standard error, never into the DAG text.
        return _scaffolded_dag(
            args, job_name, dag_id, runner, storage, run_config, command, step_queues, note
        )

    built = call_in_child(scaffolded, lambda notes: _loaded_what(args, notes))
    text = built["text"]
    if built.get("sensors"):
        print(
            f"dagster-airflow scaffold: job {job_name!r} has the sensor(s) "
            f"{', '.join(map(repr, built['sensors']))}, which a single job's scaffold does not "
            "map: `scaffold --all --install` writes their sensor DAGs (docs/project.md).",
            file=sys.stderr,
        )
    if folder is None:
        sys.stdout.write(text)
        return 0
    path, replaced = install_dag(text, folder, dag_id, args.force, create=not args.dags_folder)
    print(f"Wrote DAG {dag_id!r} ({built['steps']} tasks) to {path}")
    for old in replaced:
        print(f"Removed {old}, which held the same DAG under an older name")
    return 0


def _scaffolded_dag(
    args, job_name, dag_id, runner, storage, run_config, command, step_queues, note
) -> dict[str, Any]:
    """The DAG file's text and its number of tasks (the code location loaded here)."""
    import attrs

    from dagster_airflow.job.compile import compile_job
    from dagster_airflow.scaffold.environment import dag_environment, environment_flags
    from dagster_airflow.scaffold.render import relocate, render_dag

    location = code_location(args, job_name)
    note({"location": location.describe()})
    where = " + ".join(args.config) if args.config else "a run config file (-e run_config.yml)"
    graph = compile_job(location, job_name, run_config, where, args.schedule)
    for line in graph.controls.notes:  # what Airflow cannot express, one sentence each
        print(f"dagster-airflow scaffold: note: {line}", file=sys.stderr)
    if args.image_code_root:
        host_root = location.working_directory or str(Path.cwd())
        graph = attrs.evolve(
            graph, code_location=relocate(graph.code_location, host_root, args.image_code_root)
        )
    text = render_dag(
        graph,
        runner,
        storage,
        dag_id=dag_id,
        command=command,
        asset_uri_template=args.asset_uri,
        schedule_on_assets=args.schedule_on_assets,
        queue=args.queue,
        step_queues=step_queues,
        environment=dag_environment(graph.environment, environment_flags(args.env), runner.name),
        dagster_home=args.dagster_home,
        dagster_ui_url=args.dagster_ui_url,
    )
    return {"text": text, "steps": len(graph.steps), "sensors": _job_sensors(location, job_name)}


def _job_sensors(location, job_name: str) -> list[str]:
    """The sensors that start the job: the single-job scaffold says it writes none of them."""
    from dagster_airflow.job.sensors import sensors_of_job

    return sensors_of_job(location, job_name)


def _loaded_what(args: argparse.Namespace, notes: list[dict]) -> str:
    """The code location the child was loading, for a sentence on how it ended."""
    for note in reversed(notes):
        if "location" in note:
            return f"the code location {note['location']}"
    if args.python_file:
        return f"the code location file {args.python_file!r}"
    if args.module_name:
        return f"the code location module {args.module_name!r}"
    if args.workspace:
        return f"a code location of workspace {args.workspace!r}"
    return f"the code location found in {str(Path.cwd())!r}"


def _step_queues(values: Sequence[str]) -> dict[str, str]:
    queues = {}
    for value in values:
        step, sep, queue = value.partition("=")
        if not sep or not step:
            raise ConfigurationError(
                f"--step-queue {value!r} is not STEP=QUEUE; write it as --step-queue my_op=east."
            )
        queues[step] = queue
    return queues
