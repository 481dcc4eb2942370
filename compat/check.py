"""One combination's end-to-end checks, run by compat/run.py with the Dagster side's Python.

    <dagster env>/bin/python compat/check.py --airflow-python <airflow env>/bin/python --work DIR

The scaffold runs here (the Dagster side), the DAG runs in `airflow dags test` with the Airflow
side's Python, and its steps run with this Python again (the subprocess runner's ``python``
option): two environments, as a deployment has them. Each job goes through the compare kit
(dagster_airflow.testing.compare_job: the same job run by Dagster in process, every difference
listed); partitions, which the kit does not take, through a scheduled run compared with
Dagster's own run of that partition. Schedules, sensors and the team's Dagster instance
(--dagster-home) are compat/features.py's checks. Prints one JSON object: the versions and each
check's result.
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test jobs (tests/jobs) and examples/ by module name
sys.path.insert(0, str(ROOT / "compat"))

import features  # noqa: E402

SEMANTICS = ROOT / "tests" / "jobs" / "semantics"

# (check, job file under tests/jobs/semantics, job, what it proves)
COMPARED = (
    ("fan-in", "graph_shapes.py", "graph_shapes", "fan-in of ten, optional outputs, nested graph"),
    ("retries", "retries.py", "retry_forms", "RetryPolicy forms, RetryRequested, hooks"),
    ("dynamic outputs", "dynamic.py", "dynamic_shapes", "map, collect, nested mapping"),
    ("assets with checks", "assets.py", "asset_checks_job", "assets, blocking checks"),
)
PARTITION = ("hourly_job", "2022-05-31T01:00:00+00:00", "2022-05-31-00:00")


def compared(
    home, work: Path, runner_python: str, file: str, job: str, reports: dict | None = None
) -> list[str]:
    """The job through the compare kit. The assets job runs with the team's Dagster instance
    (--dagster-home, features.TEAM_INSTANCE_JOB): its steps are still compared, and the
    "team instance" check reads the instance that run wrote (one DAG run for both)."""
    from dagster_airflow.model import CodeLocation
    from dagster_airflow.testing import compare_job

    run_config = None
    if job == "graph_shapes":
        from tests.jobs.semantics.graph_shapes import RUN_CONFIG as run_config
    options = ["--runner-option", f"python={runner_python}"]
    if job == features.TEAM_INSTANCE_JOB:
        options += ["--dagster-home", str(features.dagster_home(work))]
    location = CodeLocation(python_file=str(SEMANTICS / file), working_directory=str(SEMANTICS))
    report = compare_job(
        location,
        job,
        run_config,
        scaffold_options=options,
        airflow_home=home,
        work_dir=work / job,
        timeout=600,
    )
    if reports is not None:
        reports[job] = report
    if not report.differences and not report.dagster.steps:
        return ["Dagster's own run executed no step"]
    return [d for d in report.differences if d != features.END_TASK_LINE]


def partitioned(home, work: Path, runner_python: str) -> list[str]:
    """The scaffold's CronTriggerTimetable DAG run at a logical date executes the partition
    Dagster's schedule launches then, with Dagster's own outputs for it."""
    from dagster_airflow.model import dagster_run_id
    from dagster_airflow.storage.filesystem import FilesystemStorage
    from examples.scheduling import defs

    job, logical_date, partition = PARTITION
    storage = FilesystemStorage(base_dir=str(work / "partitions-storage"))
    done = subprocess.run(
        [
            *(sys.executable, "-m", "dagster_airflow", "scaffold", job),
            *("-f", str(ROOT / "examples" / "scheduling.py"), "--storage", "filesystem"),
            *("--storage-option", f"base_dir={storage.base_dir}"),
            *("--runner-option", f"python={runner_python}"),
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        return [f"the scaffold refused {job!r}: {done.stderr.strip()}"]
    home.install(done.stdout, f"{job}.py")
    result = home.dags_test(job, logical_date=logical_date, timeout=600)
    if not result.succeeded:
        return [f"the DAG run did not succeed: {result.states}\n{result.output[-2000:]}"]
    theirs = defs.resolve_job_def(job).execute_in_process(partition_key=partition)
    differences = []
    for step in ("hourly_readings", "hourly_summary"):
        key = storage.key(dagster_run_id(job, result.run_id), step, "result")
        with storage.open_read(key) as stream:
            ours = pickle.load(stream)
        if ours != theirs.output_for_node(step):
            differences.append(f"{step}: {ours!r} under Airflow, {theirs.output_for_node(step)!r}")
    return differences


def timed(name: str, what: str, run) -> dict:
    started = time.monotonic()
    try:
        differences = run()
    except Exception:  # a check that breaks is a failed check, with its traceback to look into
        differences = [traceback.format_exc()]
    seconds = round(time.monotonic() - started, 1)
    print(f"{name}: {'passed' if not differences else 'FAILED'} in {seconds} s", file=sys.stderr)
    shown = [d[-2000:] for d in differences[:5]]
    return {"check": name, "what": what, "passed": not differences, "seconds": seconds} | (
        {"differences": shown} if shown else {}
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--airflow-python", required=True)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--only", action="append", default=[], help="a check's name")
    args = parser.parse_args()
    import dagster

    from dagster_airflow.testing.airflow_home import AirflowHome

    home = AirflowHome(args.work / "airflow", python=args.airflow_python)
    version = home.airflow("version")
    me = sys.executable
    reports: dict = {}  # job -> the compare kit's report

    def team_instance() -> list[str]:
        if features.TEAM_INSTANCE_JOB not in reports:  # run alone (--only "team instance")
            compared(home, args.work, me, "assets.py", features.TEAM_INSTANCE_JOB, reports)
        return features.team_instance(home, args.work, reports[features.TEAM_INSTANCE_JOB])

    checks = [
        (name, what, lambda f=file, j=job: compared(home, args.work, me, f, j, reports))
        for name, file, job, what in COMPARED
    ] + [
        (
            "partitions",
            "hourly partition at a logical date",
            lambda: partitioned(home, args.work, me),
        ),
        (
            "schedules",
            "DagsterCronTimetable registered, a tick run and a skip as Dagster evaluates them",
            lambda: features.scheduled(home, args.work, me),
        ),
        (
            "sensors",
            "a sensor tick's runs, their config, partition, tags and cursor as Dagster's",
            lambda: features.sensed(home, args.work, me),
        ),
        (
            "team instance",
            "--dagster-home (the assets run): one Dagster run, its status and catalog as Dagster's",
            team_instance,
        ),
    ]
    results = [timed(n, w, run) for n, w, run in checks if not args.only or n in args.only]
    out = {"airflow": version.stdout.strip().splitlines()[-1], "dagster": dagster.__version__}
    print(json.dumps({**out, "checks": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
