"""The `dagster-airflow` command. Each subcommand imports only the side it needs."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster_airflow.errors import ConfigurationError, DagsterAirflowError
from dagster_airflow.model import REQUEST_ENV_VAR, CodeLocation, RunnerSpec, StorageSpec

EXIT_USAGE = 2


def _parse_option(text: str, flag: str) -> tuple[str, Any]:
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigurationError(
            f"{flag} {text!r} is not KEY=VALUE; write it as {flag} name=value."
        )
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _backend_spec(cls, kind: str, name: str, options: Sequence[str]):
    from dagster_airflow.plugins.manager import check_options, get_plugins

    values = dict(_parse_option(o, f"--{kind}-option") for o in options)
    backend = getattr(get_plugins(), kind)(name)
    values = backend.cls.scaffold_options(values)
    check_options(kind, name, backend.cls, values)
    return cls(name=name, options=values), backend


def _code_location(args: argparse.Namespace) -> CodeLocation:
    def absolute(path: str | None) -> str | None:
        return str(Path(path).expanduser().absolute()) if path else None

    working_directory = absolute(args.working_directory)
    if args.python_file:
        python_file = Path(args.python_file).expanduser()
        if not python_file.is_file():
            raise ConfigurationError(
                f"code location file {args.python_file!r} does not exist; check the -f path."
            )
        working_directory = working_directory or str(Path.cwd())
    return CodeLocation(
        python_file=absolute(args.python_file),
        module_name=args.module_name,
        workspace=absolute(args.workspace),
        attribute=args.attribute,
        working_directory=working_directory or (None if args.workspace else str(Path.cwd())),
        location_name=args.location_name,
    )


def cmd_scaffold(args: argparse.Namespace, argv: Sequence[str]) -> int:
    import attrs

    from dagster_airflow.compile import compile_job, load_run_config
    from dagster_airflow.scaffold import (
        command_line,
        dags_folder,
        install_dag,
        relocate,
        render_dag,
    )

    location = _code_location(args)
    runner, runner_backend = _backend_spec(RunnerSpec, "runner", args.runner, args.runner_option)
    storage_name = args.storage or runner_backend.cls.default_storage
    storage, _ = _backend_spec(StorageSpec, "storage", storage_name, args.storage_option)
    run_config = load_run_config(args.config)
    where = " + ".join(args.config) if args.config else "a run config file (-e run_config.yml)"
    graph = compile_job(location, args.job, run_config, where)
    if args.image_code_root:
        host_root = location.working_directory or str(Path.cwd())
        graph = attrs.evolve(
            graph, code_location=relocate(graph.code_location, host_root, args.image_code_root)
        )
    text = render_dag(
        graph,
        runner,
        storage,
        dag_id=args.dag_id or args.job,
        command=command_line(argv),
        asset_uri_template=args.asset_uri,
        schedule_on_assets=args.schedule_on_assets,
    )
    if not args.install:
        sys.stdout.write(text)
        return 0
    folder = Path(args.dags_folder).expanduser() if args.dags_folder else dags_folder()
    path = install_dag(text, folder, f"{graph.code_location.name}_{graph.job_name}.py")
    print(f"Wrote DAG {args.dag_id or args.job!r} ({len(graph.steps)} tasks) to {path}")
    return 0


def cmd_check(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from dagster_airflow.drift import check_dag_file

    drift = check_dag_file(args.dag_file)
    for line in drift:
        print(line)
    if drift:
        print(
            f"{args.dag_file}: {len(drift)} difference(s) from job; scaffold it again "
            "(the command is in the file's docstring)."
        )
        return 1
    print(f"{args.dag_file}: matches its job.")
    return 0


def cmd_execute_step(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from dagster_airflow.worker import execute_step

    if args.request_file == "-":
        text = sys.stdin.read()
    elif args.request_file:
        try:
            text = Path(args.request_file).read_text()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the step request {args.request_file!r}: {exc.strerror}."
            ) from exc
    else:
        text = os.environ.get(REQUEST_ENV_VAR, "")
        if not text:
            raise ConfigurationError(
                f"no step request: set {REQUEST_ENV_VAR} to its JSON, or pass --request-file."
            )
    # SIGTERM (a runner's kill, `docker stop`, ECS stopping the task) interrupts the step as
    # Ctrl-C would. Dagster's execution maps it so once it begins; this covers the seconds
    # before (importing Dagster, loading the code location), when the worker would otherwise
    # die without a word, or, as a container's PID 1, ignore SIGTERM until SIGKILL. Either way
    # the step is reported as stopped and its event log is written.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    code = execute_step(text)
    _exit_now(code)
    return code  # not reached


def _exit_now(code: int) -> None:
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


def cmd_install(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from dagster_airflow.plugins.install import install_plugin

    folder = Path(args.plugins_folder).expanduser() if args.plugins_folder else None
    try:
        installed = install_plugin(folder)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot write the Airflow plugin into {exc.filename!r}: {exc.strerror}; pass "
            "--plugins-folder or set AIRFLOW__CORE__PLUGINS_FOLDER to a folder you can write."
        ) from exc
    print(installed.describe())
    return 0


def cmd_plugins(args: argparse.Namespace, argv: Sequence[str]) -> int:
    import json

    from dagster_airflow.plugins.manager import plugin_listing

    rows, failures = plugin_listing()
    if args.json:
        failed = [
            {"plugin": f.plugin, "distribution": f.distribution, "error": f.error} for f in failures
        ]
        print(json.dumps({"backends": rows, "failed": failed}, indent=2))
    else:
        for kind, title in (("runner", "Runners"), ("storage", "Storages")):
            print(f"{title}:")
            for row in (r for r in rows if r["kind"] == kind):
                provider = (
                    f"{row['distribution']} {row['version']}"
                    if row["version"]
                    else (f"registered in code by {row['plugin']!r}")
                )
                print(f"  {row['name']:<12} {provider:<28} {row['class']}")
        if failures:
            print("Plugins that failed to load:")
            for failure in failures:
                print(
                    f"  {failure.plugin} ({failure.distribution or 'no distribution'}): "
                    f"{failure.error}"
                )
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dagster-airflow",
        description="Run Dagster jobs on Apache Airflow: one Airflow task per execution step.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    scaffold = commands.add_parser(
        "scaffold",
        help="write an Airflow DAG file for a Dagster job",
        description="Compile a Dagster job's execution plan with its run config and print an "
        "Airflow DAG file with one DagsterOperator per step (or --install it).",
    )
    scaffold.add_argument("job", metavar="JOB", help="the Dagster job's name")
    scaffold.add_argument(
        "-e",
        "-c",
        "--config",
        action="append",
        default=[],
        metavar="RUN_CONFIG_YAML",
        help="a run config YAML file; repeat to merge several, later files winning",
    )
    where = scaffold.add_mutually_exclusive_group(required=True)
    where.add_argument("-f", "--python-file", help="the Python file that defines the job")
    where.add_argument("-m", "--module-name", help="the Python module that defines the job")
    where.add_argument("-w", "--workspace", help="a Dagster workspace.yaml")
    scaffold.add_argument("-a", "--attribute", help="the Definitions, repository or job attribute")
    scaffold.add_argument("-d", "--working-directory", help="the directory the code imports from")
    scaffold.add_argument("-l", "--location-name", help="with -w: the code location to use")
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
    scaffold.add_argument("--dag-id", help="the Airflow DAG id (default: the job's name)")
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
        "--install",
        action="store_true",
        help="write {location}_{job}.py into the dags folder instead of printing it",
    )
    scaffold.add_argument(
        "--dags-folder", help="with --install (default: Airflow's, $AIRFLOW_HOME/dags)"
    )
    scaffold.set_defaults(handler=cmd_scaffold)

    install = commands.add_parser(
        "install",
        help="install the Airflow plugin (task links to outputs, event logs, Dagster runs)",
        description="Write the dagster-airflow Airflow plugin into Airflow's plugins folder; "
        "running it again changes nothing unless the plugin changed.",
    )
    install.add_argument(
        "--plugins-folder",
        help="where to write it (default: Airflow's, $AIRFLOW_HOME/plugins or "
        "AIRFLOW__CORE__PLUGINS_FOLDER)",
    )
    install.set_defaults(handler=cmd_install)

    listing = commands.add_parser(
        "plugins",
        help="list the installed runners and storages, and plugins that failed to load",
        description="List every runner and storage with the distribution that provides it, and "
        "every plugin that failed to load with its error (exit status 1 when one did).",
    )
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=cmd_plugins)

    check = commands.add_parser(
        "check",
        help="check that a scaffolded DAG file still matches its job (for CI)",
        description="Compile the job a scaffolded DAG file names, with the file's code location "
        "and run config, and print one line per difference (steps, edges, config schema, "
        "partitions, retry policies); exit status 1 when there is one.",
    )
    check.add_argument("dag_file", metavar="DAG_FILE", help="the scaffolded DAG file")
    check.set_defaults(handler=cmd_check)

    execute = commands.add_parser(
        "execute-step",
        help="execute one step of a job (what a runner starts; not for direct use)",
        description=f"Execute the step a StepRequest describes (from ${REQUEST_ENV_VAR} or "
        "--request-file) and print its events as JSON lines.",
    )
    execute.add_argument("--request-file", help="a file with the request's JSON, or - for stdin")
    execute.set_defaults(handler=cmd_execute_step)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args, argv)
    except DagsterAirflowError as exc:
        print(f"dagster-airflow {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
