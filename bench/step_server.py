"""The warm step server (docs/step-server.md).

- One warm step through DagsterOperator.execute (the server already running) against the fresh
  floor, `python -c "import dagster; import <job module>"` (target: at most 0.25 times).
- `airflow dags test` of the 10-step chain (subprocess runner, warm) against the same command on a
  chain of ten trivial `@task`s, Airflow's own floor (target: at most 1.3 times), and against
  `dagster job execute` (multiprocess executor) of the job.
- The server's start cost (first step, server started by it, against a warm step), its memory
  and each step's extra memory (unique set size), for sizing.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from measure import (
    SCRATCH,
    Row,
    airflow_with_job,
    dagster_job_execute,
    paired_medians,
    print_table,
    run,
    wall,
)
from synthetic_job import write_job

from dagster_airflow.step_server.protocol import memory_kib, running_servers, stop_servers

REPEATS = 5
E2E_REPEATS = 2
STEPS = 10

# Steps through the operator in one process that has imported Airflow, as a task process has:
# the first starts the server, the rest are warm. Prints one time a line.
THROUGH_OPERATOR = """
import sys, time, types
from airflow.sdk import DAG
from dagster_airflow.operator import DagsterOperator
folder, module, runtime_dir, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with DAG(dag_id="bench_warm", schedule=None) as dag:
    task = DagsterOperator(
        task_id="step_0000", step_key="step_0000", job_name="synthetic_10",
        code_location={"python_file": f"{folder}/{module}.py", "working_directory": folder},
        storage={"name": "filesystem", "base_dir": f"{folder}/storage"},
        runner={"name": "subprocess", "runtime_dir": runtime_dir},
    )
for i in range(count):
    ti = types.SimpleNamespace(try_number=1, max_tries=0, map_index=-1)
    start = time.perf_counter()
    task.execute({"ti": ti, "run_id": f"bench_{time.time()}_{i}"})
    print("TIME", time.perf_counter() - start, flush=True)
"""
FLOOR = "import sys; sys.path.insert(0, sys.argv[1]); import dagster; import {module}"

HOLD_JOB = """
import os, time
from pathlib import Path
import dagster as dg

@dg.op(config_schema={"pid_file": str})
def hold(context):
    Path(context.op_config["pid_file"] + ".tmp").write_text(str(os.getpid()))
    os.rename(context.op_config["pid_file"] + ".tmp", context.op_config["pid_file"])
    time.sleep(3)

@dg.job
def hold_job():
    hold()
"""

TRIVIAL_CHAIN = """
from airflow.sdk import DAG, task

with DAG(dag_id="trivial_chain", schedule=None) as dag:
    previous = None
    for i in range({steps}):
        @task(task_id=f"step_{{i:04d}}")
        def step(value=None):
            return 1 + (value or 0)

        previous = step(previous) if previous is not None else step()
"""


def warm_step(folder: Path, module: str, runtime_dir: Path) -> tuple[float, float, list[float]]:
    """(first step with the server start, median warm step, every warm step)."""
    done = run([sys.executable, "-c", THROUGH_OPERATOR, str(folder), module, str(runtime_dir), "6"])
    times = [float(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("TIME")]
    warm = sorted(times[1:])
    return times[0], warm[len(warm) // 2], warm


def memory(folder: Path, runtime_dir: Path) -> tuple[dict, dict]:
    """The server's memory and one running step's, in kiB."""
    from dagster_airflow.model import CodeLocation, StepRequest, StorageSpec
    from dagster_airflow.runners.subprocess import SubprocessRunner

    job = folder / "hold_job.py"
    job.write_text(HOLD_JOB)
    pid_file = folder / "hold.pid"
    pid_file.unlink(missing_ok=True)
    request = StepRequest(
        code_location=CodeLocation(python_file=str(job)),
        job_name="hold_job",
        step_key="hold",
        run_id="3f7b2a10-1c2d-5e4f-8a9b-0c1d2e3f4a5b",
        run_config={"ops": {"hold": {"config": {"pid_file": str(pid_file)}}}},
        storage=StorageSpec("filesystem", {"base_dir": str(folder / "storage")}),
    )
    import logging
    import threading

    runner = SubprocessRunner(runtime_dir=str(runtime_dir))
    runner.run(request, {}, logging.getLogger("bench"))  # starts the server
    pid_file.unlink()
    thread = threading.Thread(target=runner.run, args=(request, {}, logging.getLogger("bench")))
    thread.start()
    while not pid_file.exists():
        time.sleep(0.02)
    step = memory_kib(int(pid_file.read_text()))
    servers = [s for s in running_servers(runtime_dir) if "hold_job" in str(s.info)]
    server = memory_kib(servers[0].pid)
    thread.join()
    return server, step


def end_to_end(folder: Path, runtime_dir: Path) -> tuple[float, float, float]:
    job_file = write_job(folder, STEPS, "chain")
    home, dagster_env = airflow_with_job(
        folder, job_file, f"synthetic_{STEPS}", f"runtime_dir={runtime_dir}"
    )
    home.install(TRIVIAL_CHAIN.format(steps=STEPS), "trivial_chain.py")

    def dags_test(dag_id: str):
        def go() -> None:
            result = home.dags_test(dag_id)
            if not result.succeeded:
                raise RuntimeError(result.output[-3000:])

        return go

    def dagster() -> None:
        dagster_job_execute(job_file, f"synthetic_{STEPS}", dagster_env, folder)

    dags_test(f"synthetic_{STEPS}")()  # the server starts once, as on a worker that ran a step
    ours, floor = paired_medians(
        lambda: wall(dags_test(f"synthetic_{STEPS}")),
        lambda: wall(dags_test("trivial_chain")),
        E2E_REPEATS,
    )
    _, theirs = paired_medians(lambda: ours, lambda: wall(dagster), E2E_REPEATS)
    return ours, floor, theirs


def main() -> list[Row]:
    folder = SCRATCH / "step_server"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    module = write_job(folder, 10).stem
    runtime_dir = Path(tempfile.mkdtemp(prefix="da-bench-", dir="/tmp"))
    try:

        def fresh() -> float:
            start = time.perf_counter()
            run([sys.executable, "-c", FLOOR.format(module=module), str(folder)])
            return time.perf_counter() - start

        firsts, warms = [], []

        def ours() -> float:
            stop_servers(runtime_dir)
            first, warm, _ = warm_step(folder, module, runtime_dir)
            firsts.append(first)
            warms.append(warm)
            return warm

        warm, floor = paired_medians(ours, fresh, 3)
        first = sorted(firsts)[len(firsts) // 2]
        server_mem, step_mem = memory(folder, runtime_dir)
        e2e, trivial, dagster = end_to_end(folder / "e2e", runtime_dir)
    finally:
        stop_servers(runtime_dir)
        shutil.rmtree(runtime_dir, ignore_errors=True)
    mib = 1024
    return [
        Row(
            "one warm step through DagsterOperator.execute",
            warm,
            floor,
            "s",
            "<= 0.25",
            f'fresh python -c "import dagster; import {module}" (median of 3 x 5 warm steps)',
        ),
        Row(
            "first step, starting the server",
            first,
            warm,
            "s",
            "",
            "a warm step (the server's start cost is the difference)",
        ),
        Row(
            f"airflow dags test, {STEPS}-step chain, warm",
            e2e,
            trivial,
            "s",
            "<= 1.3",
            f"airflow dags test, a chain of {STEPS} trivial @tasks (median of {E2E_REPEATS})",
        ),
        Row(
            f"airflow dags test, {STEPS}-step chain, warm",
            e2e,
            dagster,
            "s",
            "",
            "dagster job execute, multiprocess executor",
        ),
        Row(
            "step server memory (RSS / USS)",
            server_mem["rss"] / mib,
            server_mem["uss"] / mib,
            "M",
            "",
            "ours: RSS; baseline: its unique set size",
        ),
        Row(
            "one running step, extra memory (USS / RSS)",
            step_mem["uss"] / mib,
            step_mem["rss"] / mib,
            "M",
            "",
            "ours: unique set size of the forked step; baseline: its RSS, mostly shared",
        ),
    ]


if __name__ == "__main__":
    print_table(main())
