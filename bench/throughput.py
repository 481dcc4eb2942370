"""Throughput under a real scheduler (issue 28, point 4): the 10-step fan-out (ten independent
steps) and the 10-step chain, scaffolded with the subprocess runner and its step server (warm
steps), on a real deployment (AirflowDeployment: scheduler, DAG processor, api-server and
triggerer on SQLite, LocalExecutor, parallelism 4), against the same shapes of trivial
`@task`s (airflow.sdk) under the same scheduler: Airflow's own floor. Target: at most 1.2 times.

Each run is triggered through the REST API and timed as Airflow recorded it, from queued (the
trigger) to the run's end, so the scheduler's latency is in both. Runs go one at a time, ours and
the floor alternately, and each figure is the median. The scaffolded DAGs are the scaffold's
defaults: no Dagster home and no schedule, so no task but the steps' (no end task, no tick task).

Each run starts with every executor slot free: a LocalExecutor worker holds its slot until its
supervisor has noticed the task process's exit, which Airflow 3.3's supervisor can notice only
at its next heartbeat tick, 5 s later (`[workers] min_heartbeat_interval`), when the task's
sockets closed just before the process ended. Measured 2026-12-07: 6 of 30 tasks of ours and 10
of 30 of the floor's; back to back, a run inherited the slots the last one still held, and the
ratio measured which DAG ran after whose stalls. So before each trigger the bench waits until
the executor has finished every workload it was given (the scheduler's log). Stalls within a run
still count, for both DAGs: each row says how many tasks of each had one.

Beside each ratio, where the time goes: the median task's run time (start to end) and its wait
(from the upstream's end, or the run's start, to its own start), from the task instances.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import sys
from datetime import datetime
from pathlib import Path

# The project's harness (a deployment) is a top-level folder of the repository, not installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fan_out import scaffold
from measure import ROOT, SCRATCH, Row, print_table, run
from synthetic_job import write_job

from dagster_airflow.step_server.protocol import RUNTIME_DIR_ENV_VAR
from harness.airflow_deployment import AirflowDeployment, processes_with_env
from harness.servers import free_port

# Airflow's 5 s stall (above) falls on a task of either DAG at random, and one in a run of 3 s
# moves its time by half: four runs of each gave fan-out ratios of 1.02 and 1.73 within the hour,
# idle. Eight make the medians steadier (1.44 twice, 2.06 once); the bench takes about 7 minutes.
REPEATS = 8
STEPS = 10
PARALLELISM = 4
SHAPES = {"fan-out": "independent", "chain": "chain"}
TARGET = "<= 1.2"

TRIVIAL = """
from airflow.sdk import DAG, task

with DAG(dag_id={dag_id!r}, schedule=None) as dag:
    previous = None
    for i in range({steps}):
        @task(task_id=f"step_{{i:04d}}")
        def step(value=None):
            return 1 + (value or 0)

        if {chain} and previous is not None:
            previous = step(previous)
        else:
            previous = step()
"""


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def cpu_seconds(airflow: AirflowDeployment) -> float:
    """The CPU time (user and system) every process of the deployment has used so far, the
    children it reaped included: its servers, task processes, step servers and steps."""
    total = 0
    for pid in processes_with_env(f"{RUNTIME_DIR_ENV_VAR}={airflow.runtime_dir}"):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        total += sum(int(field) for field in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def workloads_finished(airflow: AirflowDeployment) -> int:
    """How many task workloads the LocalExecutor's workers have finished (and freed the slot)."""
    return (airflow.logs / "scheduler.log").read_text(errors="replace").count("Workload finished")


WORKLOAD_FINISHED = re.compile(
    r"Workload finished .*?duration=([0-9.]+).*?workload_id=([0-9a-f-]+)"
)
# A task instance whose workload (its slot) lasted this much longer than the task itself was held
# by the supervisor's stall (5 s by default).
STALL_SECONDS = 2.0


def stalled(airflow: AirflowDeployment, dag_id: str, run_ids: list[str]) -> tuple[int, int]:
    """Of the task instances of these runs, how many held their slot STALL_SECONDS or more
    after they ended, and how many there were (every workload has finished: see
    wait_for_free_slots)."""
    log = (airflow.logs / "scheduler.log").read_text(errors="replace")
    slot_seconds = {w.replace("-", ""): float(d) for d, w in WORKLOAD_FINISHED.findall(log)}
    count = total = 0
    for run_id in run_ids:
        for task in airflow.task_instances(dag_id, run_id).values():
            ran = (_when(task["end_date"]) - _when(task["start_date"])).total_seconds()
            total += 1
            count += slot_seconds[task["id"].replace("-", "")] - ran >= STALL_SECONDS
    return count, total


def wait_for_free_slots(airflow: AirflowDeployment) -> None:
    """Until the executor has finished the workload of every task instance so far, of every DAG
    and run (all ran: a run that failed stops the bench), and so freed every slot."""
    _, listed = airflow.rest("GET", "/api/v2/dags/~/dagRuns/~/taskInstances?limit=1")
    given = listed["total_entries"]
    airflow.wait_until(
        lambda: workloads_finished(airflow) >= given, 60, "every executor slot to be free"
    )


def timed_run(airflow: AirflowDeployment, dag_id: str, run_id: str) -> dict[str, float]:
    """With every slot free, trigger one run and wait for its end; its time from queued to end
    as Airflow recorded it, the CPU the deployment used meanwhile, and the median task's run
    time and wait before it started."""
    wait_for_free_slots(airflow)
    cpu = cpu_seconds(airflow)
    airflow.trigger(dag_id, run_id)
    state = airflow.wait_for_run(dag_id, run_id)
    cpu = cpu_seconds(airflow) - cpu
    _, body = airflow.rest("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
    if state != "success":
        raise RuntimeError(f"run {run_id} of {dag_id} ended {state}: {body}")
    queued, started, ended = (_when(body[key]) for key in ("queued_at", "start_date", "end_date"))
    tasks = airflow.task_instances(dag_id, run_id)
    runs, waits = [], []
    for task in tasks.values():
        start, end = _when(task["start_date"]), _when(task["end_date"])
        runs.append((end - start).total_seconds())
        # A chain's task waits for its upstream (the one before it ends just before); a
        # fan-out's for a slot, so its wait is measured from the run's start.
        before = [_when(t["end_date"]) for t in tasks.values() if _when(t["end_date"]) < start]
        ready = max(before) if before and "chain" in dag_id else started
        waits.append((start - ready).total_seconds())
    return {
        "run": (ended - queued).total_seconds(),
        "cpu": cpu,
        "task": statistics.median(runs),
        "wait": statistics.median(waits),
    }


def check_warm(airflow: AirflowDeployment, dag_id: str, run_id: str) -> None:
    """Every task of ours was forked by a step server (AssertionError otherwise)."""
    for task_id in airflow.task_instances(dag_id, run_id):
        airflow.forked_step(dag_id, run_id, task_id)


def main() -> list[Row]:
    # Our package's bytecode, as an installed package has it: this checkout is installed
    # editable, and with PYTHONDONTWRITEBYTECODE (set in these sessions) every task process
    # would compile our modules from source, a cost no deployment pays.
    run([sys.executable, "-m", "compileall", "-q", str(ROOT / "dagster_airflow")])
    folder = SCRATCH / "throughput"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    settings = {"AIRFLOW__CORE__PARALLELISM": str(PARALLELISM)}
    times: dict[str, list[dict[str, float]]] = {}
    with AirflowDeployment(folder / "airflow", port=free_port(), env=settings) as airflow:
        pairs = {}
        for name, shape in SHAPES.items():
            slug = name.replace("-", "_")
            ours, floor = f"synthetic_{slug}", f"trivial_{slug}"
            job_file = write_job(folder / slug, STEPS, shape)
            airflow.install(scaffold(job_file, ours, folder / slug), f"{ours}.py")
            trivial = TRIVIAL.format(dag_id=floor, steps=STEPS, chain=shape == "chain")
            airflow.install(trivial, f"{floor}.py")
            pairs[name] = (ours, floor)
        for ours, floor in pairs.values():
            airflow.wait_for_dag(ours)
            airflow.wait_for_dag(floor)
            # A first run of each: ours starts its step server, as on a worker that already
            # ran a step; both compile and cache what a first run does.
            timed_run(airflow, ours, "first")
            timed_run(airflow, floor, "first")
        for i in range(REPEATS):
            for ours, floor in pairs.values():
                # Alternately first, so neither always follows the other.
                for dag_id in (ours, floor) if i % 2 == 0 else (floor, ours):
                    times.setdefault(dag_id, []).append(timed_run(airflow, dag_id, f"r{i}"))
                check_warm(airflow, ours, f"r{i}")
        wait_for_free_slots(airflow)  # every workload's duration is in the log
        runs = [f"r{i}" for i in range(REPEATS)]
        stalls = {
            dag_id: stalled(airflow, dag_id, runs) for pair in pairs.values() for dag_id in pair
        }
    rows = []
    for name, (ours, floor) in pairs.items():
        mine, theirs = times[ours], times[floor]
        (our_stalls, our_tasks), (floor_stalls, floor_tasks) = stalls[ours], stalls[floor]

        def median(found: list[dict[str, float]], key: str) -> float:
            return statistics.median(t[key] for t in found)

        rows.append(
            Row(
                f"{STEPS}-step {name}, warm, LocalExecutor x{PARALLELISM}",
                median(mine, "run"),
                median(theirs, "run"),
                "s",
                TARGET,
                f"{STEPS} trivial @tasks of the same shape, same scheduler (median of {REPEATS})",
                f"median task {median(mine, 'task'):.2f} / {median(theirs, 'task'):.2f} s, "
                f"waiting {median(mine, 'wait'):.2f} / {median(theirs, 'wait'):.2f} s "
                "before it starts; the deployment's CPU per run "
                f"{median(mine, 'cpu'):.1f} / {median(theirs, 'cpu'):.1f} s (ours / floor); "
                "every step forked by the step server; tasks whose slot Airflow's supervisor "
                f"held 5 s after they ended: {our_stalls} of {our_tasks} / {floor_stalls} of "
                f"{floor_tasks}",
            )
        )
    return rows


if __name__ == "__main__":
    print_table(main())
