"""The `dagster-airflow` command. Each subcommand imports only the side it needs."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster_airflow.errors import ConfigurationError, DagsterAirflowError, yaml_problem
from dagster_airflow.model import REQUEST_ENV_VAR, CodeLocation, RunnerSpec, StorageSpec

EXIT_USAGE = 2


def _parse_option(text: str, flag: str) -> tuple[str, Any]:
    import yaml

    from dagster_airflow.job.yaml_files import load_yaml

    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigurationError(
            f"{flag} {text!r} is not KEY=VALUE; write it as {flag} name=value."
        )
    try:
        value = load_yaml(raw, f"{flag} {text!r}") if raw else ""
    except yaml.YAMLError as exc:
        raise ConfigurationError(
            f"{flag} {text!r} has a value that is not valid YAML ({yaml_problem(exc)}); quote "
            f"it as a string ({key}='\"...\"') or fix the YAML, such as {key}='{{A: b}}'."
        ) from None
    return key.strip(), value


def _backend_spec(cls, kind: str, name: str, options: Sequence[str]):
    from dagster_airflow.plugins.manager import check_options, get_plugins

    values = dict(_parse_option(o, f"--{kind}-option") for o in options)
    backend = getattr(get_plugins(), kind)(name)
    check_options(kind, name, backend.cls, values)
    values = backend.cls.scaffold_options(values)
    # Built (it connects to nothing) so that a wrong value fails here, not in every task.
    backend.create(values)
    return cls(name=name, options=values), backend


def _job_name(args: argparse.Namespace) -> str:
    """The job, named positionally or with -j/--job as Dagster spells it."""
    if args.job and args.job_option and args.job != args.job_option:
        raise ConfigurationError(
            f"two jobs named: {args.job!r} and -j {args.job_option!r}; name the job once."
        )
    job = args.job or args.job_option
    if not job:
        raise ConfigurationError(
            "no job named; pass the Dagster job's name, as in `dagster-airflow scaffold "
            "my_job -e run_config.yml` or -j my_job."
        )
    return job


def _code_location(args: argparse.Namespace, job_name: str) -> CodeLocation:
    def absolute(path: str | None) -> str | None:
        return str(Path(path).expanduser().absolute()) if path else None

    working_directory = absolute(args.working_directory)
    if not (args.python_file or args.module_name or args.workspace):
        return _discovered_location(args, job_name, working_directory)
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


def _discovered_location(
    args: argparse.Namespace, job_name: str, working_directory: str | None
) -> CodeLocation:
    """With no -f, -m or -w: what the working directory declares, as Dagster's CLI finds it."""
    import attrs

    from dagster_airflow.job.code_location import first_with_job
    from dagster_airflow.job.discovery import discover

    candidates, declared_in = discover()
    if candidates[0].workspace:
        return attrs.evolve(candidates[0], location_name=args.location_name)
    candidates = [
        attrs.evolve(
            c,
            attribute=args.attribute or c.attribute,
            working_directory=working_directory or c.working_directory,
        )
        for c in candidates
    ]
    return first_with_job(candidates, job_name, f"the modules of {str(declared_in)!r}")


def cmd_scaffold(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from dagster_airflow.job.compile import load_run_config
    from dagster_airflow.job.discovery import discover
    from dagster_airflow.scaffold.forked import call_in_child
    from dagster_airflow.scaffold.install import check_dag_id, install_dag
    from dagster_airflow.scaffold.render import command_line, dags_folder

    job_name = _job_name(args)
    dag_id = check_dag_id(args.dag_id or job_name)
    if args.python_file or args.module_name or args.workspace:
        _code_location(args, job_name)  # its checks of the paths given; it imports nothing
    else:
        discover()  # its sentence when there is nothing to find; it imports nothing
    runner, runner_backend = _backend_spec(RunnerSpec, "runner", args.runner, args.runner_option)
    storage_name = args.storage or runner_backend.cls.default_storage
    storage, _ = _backend_spec(StorageSpec, "storage", storage_name, args.storage_option)
    run_config = load_run_config(args.config)
    command = command_line(argv)
    if not (args.python_file or args.module_name or args.workspace):
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
    from dagster_airflow.scaffold.render import relocate, render_dag

    location = _code_location(args, job_name)
    note({"location": location.describe()})
    where = " + ".join(args.config) if args.config else "a run config file (-e run_config.yml)"
    graph = compile_job(location, job_name, run_config, where)
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
        dagster_home=args.dagster_home,
        dagster_ui_url=args.dagster_ui_url,
    )
    return {"text": text, "steps": len(graph.steps)}


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


def cmd_results(args: argparse.Namespace, argv: Sequence[str]) -> int:
    import json
    import logging

    from dagster_airflow.scaffold import results
    from dagster_airflow.scaffold.render import dags_folder
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


def cmd_check(args: argparse.Namespace, argv: Sequence[str]) -> int:
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


def cmd_execute_step(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from dagster_airflow.worker.entry import main as run_step

    return run_step(args.request_file)


def cmd_install(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from dagster_airflow.ui.install import install_plugin

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


def cmd_servers(args: argparse.Namespace, argv: Sequence[str]) -> int:
    import time

    from dagster_airflow.step_server.protocol import memory_kib, running_servers, runtime_dir

    directory = runtime_dir(args.runtime_dir)
    try:
        found = running_servers(directory)  # refused when another user could write there
    except OSError as exc:
        raise ConfigurationError(
            f"{exc.strerror}; pass --runtime-dir the folder the step servers listen in."
        ) from None
    # A pid in an info file is only a claim: act on a process proven to be that file's server.
    checked = [(server, server.unverified()) for server in found]
    servers = [server for server, problem in checked if not problem]
    for server, problem in checked:
        if problem:
            print(
                f"dagster-airflow servers: {'not stopping' if args.stop else 'ignoring'} "
                f"process {server.pid}, which {str(server.files.info)!r} names: {problem}, so "
                "it is not provably a step server of this directory; remove that file if no "
                "step server of yours wrote it.",
                file=sys.stderr,
            )
    refused = EXIT_USAGE if args.stop and len(servers) < len(found) else 0
    if not servers:
        print(f"no step servers in {directory}")
        return refused
    if args.stop:
        for server in servers:
            where = CodeLocation.from_dict(server.info["code_location"]).describe()
            gone = server.stop()
            print(f"{'stopped' if gone else 'could not stop'} {server.pid} ({where})")
        return refused
    print(f"{'PID':>8} {'STEPS':>6} {'IDLE':>7} {'UPTIME':>8} {'RSS':>9}  CODE LOCATION  (PYTHON)")
    for server in servers:
        status = server.status()
        rss = memory_kib(server.pid).get("rss", 0) / 1024
        uptime = time.time() - server.info.get("started", time.time())
        idle = f"{status['idle_seconds']:.0f} s" if "idle_seconds" in status else "busy"
        where = CodeLocation.from_dict(server.info["code_location"]).describe()
        print(
            f"{server.pid:>8} {status.get('steps', '?'):>6} {idle:>7} {uptime:>6.0f} s "
            f"{rss:>5.0f} MiB  {where}  ({server.info.get('python')})"
        )
    return 0


def cmd_compare(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from dagster_airflow.job.compile import load_run_config
    from dagster_airflow.testing.airflow_home import AirflowHome
    from dagster_airflow.testing.compare import compare_job

    home = AirflowHome(Path(args.airflow_home)) if args.airflow_home else None
    scaffold_options = [f"--runner={args.runner}"] + [
        f"--runner-option={o}" for o in args.runner_option
    ]
    report = compare_job(
        _code_location(args, args.job),
        args.job,
        load_run_config(args.config),
        scaffold_options=scaffold_options,
        airflow_home=home,
    )
    print(report)
    if not report.matches:
        print(f"Both runs' storages and the DAG are in {report.work_dir}", file=sys.stderr)
    return 0 if report.matches else 1


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
    scaffold.add_argument("job", metavar="JOB", nargs="?", help="the Dagster job's name")
    scaffold.add_argument(
        "-j", "--job", dest="job_option", metavar="JOB", help="the job's name, as Dagster spells it"
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
    # None of them: the working directory's pyproject.toml or workspace.yaml, as Dagster's CLI.
    where = scaffold.add_mutually_exclusive_group()
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
    found.set_defaults(handler=cmd_results)

    servers = commands.add_parser(
        "servers",
        help="list the running step servers of this user; --stop stops them",
        description="List the step servers the subprocess runner started on this machine for "
        "this user (pid, steps forked, idle time, memory, code location), or stop them. Steps "
        "still running finish on their own.",
    )
    servers.add_argument(
        "--stop",
        action="store_true",
        help="stop every listed server (a pid only once proven to be that server)",
    )
    servers.add_argument(
        "--runtime-dir",
        help="where the servers listen (default: $DAGSTER_AIRFLOW_RUNTIME_DIR, "
        "$XDG_RUNTIME_DIR/dagster-airflow or /tmp/dagster-airflow-UID)",
    )
    servers.set_defaults(handler=cmd_servers)

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
    where = compare.add_mutually_exclusive_group(required=True)
    for flags, name in (("-f", "python_file"), ("-m", "module_name"), ("-w", "workspace")):
        where.add_argument(flags, dest=name)
    for flags, name in (("-a", "attribute"), ("-d", "working_directory"), ("-l", "location_name")):
        compare.add_argument(flags, dest=name)
    compare.add_argument("--runner", default="subprocess", help="as for scaffold")
    compare.add_argument("--runner-option", action="append", default=[], metavar="KEY=VALUE")
    compare.add_argument(
        "--airflow-home", help="an Airflow home to run in (default: a new temporary one)"
    )
    compare.set_defaults(handler=cmd_compare)

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
