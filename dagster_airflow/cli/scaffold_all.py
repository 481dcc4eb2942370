"""`dagster-airflow scaffold --all` (or several -j): one DAG file per job of a code location,
each the very file `scaffold -j JOB` writes with the same flags, the location loaded once."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dagster_airflow.cli.backends import runner_and_storage
from dagster_airflow.cli.location import located, location_of_all, named_jobs
from dagster_airflow.errors import ConfigurationError, DagsterAirflowError
from dagster_airflow.files import dags_folder
from dagster_airflow.model import RunnerSpec


def run_many(
    args: argparse.Namespace,
    argv: Sequence[str],
    scaffolded_dag: Callable[..., dict[str, Any]],
    loaded_what: Callable[[argparse.Namespace, list[dict]], str],
) -> int:
    """Write each job's DAG, made by the single-job scaffold's own ``scaffolded_dag``; a job
    that cannot be scaffolded is one line on standard error (exit status 1), and the others are
    written. ``loaded_what`` names the location for a sentence on how its loading ended."""
    from dagster_airflow.job.code_location import location_jobs, preload
    from dagster_airflow.scaffold.forked import call_in_child
    from dagster_airflow.scaffold.install import install_dag
    from dagster_airflow.scaffold.render import command_line

    what = "--all" if args.all_jobs else "-j with several jobs"
    _refuse_one_job_flags(args, what)
    location = location_of_all(args, what)
    runner, storage = runner_and_storage(args)
    folder = Path(args.dags_folder).expanduser() if args.dags_folder else dags_folder()
    found_here = not located(args)

    def scaffolded(note) -> list[dict[str, Any]]:
        note({"location": location.describe()})
        preload(location)  # the user's code runs once, for every job below
        jobs = location_jobs(location) if args.all_jobs else named_jobs(args)
        built = []
        for job, dag_id, schedule in _dags_of_jobs(location, jobs, args.schedule):
            own = None if dag_id == job else dag_id
            command = command_line(job_argv(argv, job, own, schedule))
            if found_here:  # as the single-job scaffold writes it
                command = f"cd {shlex.quote(str(Path.cwd()))} && {command}"
            one = argparse.Namespace(**{**vars(args), "schedule": schedule})
            try:
                dag = scaffolded_dag(one, job, dag_id, runner, storage, {}, command, {}, note)
            except DagsterAirflowError as exc:
                built.append({"job": job, "error": str(exc)})
                continue
            built.append({"job": job, "dag_id": dag_id, "what": f"{dag['steps']} tasks", **dag})
        return built + _sensor_dags(location, runner, built, command_line(argv), found_here)

    built = call_in_child(scaffolded, lambda notes: loaded_what(args, notes))
    if not built:
        raise ConfigurationError(
            f"{location.describe()} defines no job and no asset, so --all has nothing to "
            "scaffold; check the code location (-f, -m, -w, -a)."
        )
    notes = [b["note"] for b in built if "note" in b]
    built = [b for b in built if "note" not in b]
    good = [b for b in built if "text" in b]
    create = not args.dags_folder
    for dag in good:  # every file checked before the first is written
        install_dag(dag["text"], folder, dag["dag_id"], args.force, create, check_only=True)
    for dag in good:
        path, replaced = install_dag(dag["text"], folder, dag["dag_id"], args.force, create)
        print(f"Wrote DAG {dag['dag_id']!r} ({dag['what']}) to {path}")
        for old in replaced:
            print(f"Removed {old}, which held the same DAG under an older name")
    for note in notes:
        print(f"dagster-airflow scaffold: {note}", file=sys.stderr)
    for refused in (b for b in built if "error" in b):
        print(
            f"dagster-airflow scaffold: no DAG for job {refused['job']!r}: {refused['error']}",
            file=sys.stderr,
        )
    return 0 if len(good) == len(built) else 1


def _sensor_dags(
    location, runner: RunnerSpec, built: list[dict], command: str, found_here: bool
) -> list[dict[str, Any]]:
    """A sensor DAG for each sensor of the location whose jobs all got their DAG, and one note
    (a sentence for standard error) for each sensor that is not mapped."""
    from dagster_airflow.job.sensors import location_sensors
    from dagster_airflow.scaffold.sensor_dag import render_sensor_dag, sensor_dag_id

    if found_here:
        command = f"cd {shlex.quote(str(Path.cwd()))} && {command}"
    job_dags = {b["job"]: b["dag_id"] for b in built if "text" in b}
    picked = {b["job"] for b in built}
    plans, unmapped = location_sensors(location)
    dags: list[dict[str, Any]] = [{"note": sentence} for sentence in unmapped]
    for plan in plans:
        if not set(plan.jobs) <= picked:
            continue  # a sensor of jobs not scaffolded now (-j): not this command's
        missing = [job for job in plan.jobs if job not in job_dags]
        if missing:
            dags.append(
                {"note": f"sensor {plan.name!r} is not mapped: its job {missing[0]!r} got no DAG."}
            )
            continue
        if runner.name != "subprocess":
            dags.append(
                {
                    "note": f"sensor {plan.name!r}: its ticks are evaluated on the Airflow "
                    "worker with the subprocess runner (DEFAULT_ARGS of its DAG: python, "
                    f"working_dir, env), not with the {runner.name} runner."
                }
            )
        text = render_sensor_dag(plan, location, runner, job_dags, command)
        dags.append(
            {
                "job": plan.jobs[0],
                "dag_id": sensor_dag_id(plan, job_dags),
                "text": text,
                "what": f"sensor {plan.name!r}, every {plan.minimum_interval_seconds} s",
            }
        )
    return dags


def _refuse_one_job_flags(args: argparse.Namespace, what: str) -> None:
    """Flags that name one job's things are refused with several jobs, in one sentence."""
    if args.all_jobs and (args.job or args.job_option):
        named = args.job or args.job_option[0]
        raise ConfigurationError(
            f"--all scaffolds every job, and job {named!r} is named too; leave out the job's "
            "name, or pick jobs with -j alone."
        )
    one_job = (
        ("--dag-id", args.dag_id, "each DAG id is its job's name"),
        ("-e", args.config, "each job gets its own config defaults"),
        ("--step-queue", args.step_queue, "step keys are one job's"),
    )
    for flag, value, why in one_job:
        if value:
            raise ConfigurationError(
                f"{flag} {value!r} is for one job and {what} writes several ({why}); scaffold "
                f"that job alone with -j JOB {flag} ..., after the others."
            )
    if not args.install:
        raise ConfigurationError(
            f"{what} writes one DAG file per job, so it needs --install (and --dags-folder to "
            "choose the folder); print a single job's DAG with -j JOB."
        )


def _dags_of_jobs(location, jobs: Sequence[str], schedule: str | None):
    """(job, DAG id, schedule) for each DAG: one per job, and one per schedule of a job that has
    several (``JOB__SCHEDULE``, as `scaffold -j JOB --schedule NAME` writes it alone), unless
    --schedule names the one to follow."""
    from dagster_airflow.job.code_location import default_dag_id, repository_of
    from dagster_airflow.job.schedules import schedules_of

    for job in jobs:
        dag_id = default_dag_id(location, job)
        names = sorted(s.name for s in schedules_of(repository_of(location, job), job))
        if schedule is not None or len(names) < 2:
            yield job, dag_id, schedule
        else:
            yield from ((job, f"{dag_id}__{name}", name) for name in names)


def job_argv(
    argv: Sequence[str], job: str, dag_id: str | None, schedule: str | None = None
) -> list[str]:
    """The single-job scaffold's arguments for one DAG of --all: the same flags, ``-j JOB``
    (with ``--dag-id`` where the DAG id is not the job's name, and ``--schedule`` for one of a
    job's several schedules) instead of --all or the -j list."""
    rest, tokens = [], iter(argv[1:])  # argv[0] is "scaffold"
    for token in tokens:
        if token == "--all":
            continue
        if token in ("-j", "--job"):
            next(tokens, None)
            continue
        if token.startswith("--job=") or (token.startswith("-j") and len(token) > 2):
            continue
        rest.append(token)
    own = [
        *(["--dag-id", dag_id] if dag_id else []),
        *(["--schedule", schedule] if schedule else []),
    ]
    if schedule and "--schedule" in rest:
        own = own[:-2]  # the user's own --schedule stays where it was
    return ["scaffold", "-j", job, *own, *rest]
