"""DAG parse and serialization against hand-written EmptyOperator DAGs, and scaffolding at scale.

For synthetic jobs of 10, 100 and 1,000 steps with inputs, config (every op's set in the run
config), daily partitions and dynamic mapping, against a DAG with the same task ids, edges and
schedule made of EmptyOperator:

- parse: the CPU time to import the scaffolded DAG file as the dag-processor does (its loader,
  the file's bytecode cached) in a fresh process that has already imported airflow.sdk
  (target: ratio <= 1.2);
- serialize: the time of Airflow's `DagSerialization.to_dict` of the parsed DAG, as the
  dag-processor runs it after each parse, in a fresh process (target <= 1.5);
- the size of that JSON (target <= 2) and of the DAG file (target <= 1.5).

Scale: scaffolding the 1,000-step job (under 10 s, and growing no faster than linearly).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys

from measure import BIN, SCRATCH, Row, paired_medians, print_table, run, wall
from synthetic_job import write_full_job

SIZES = (10, 100, 1000)
# Fewer at 1,000 steps, where each import and serialization takes seconds under load, so that
# `make bench` finishes in minutes.
REPEATS = {10: 7, 100: 5, 1000: 3}
SERIALIZE_REPEATS = {10: 3, 100: 3, 1000: 2}
SCAFFOLD_REPEATS = 3

# How the dag-processor imports a DAG file (airflow/dag_processing/importers/python_importer.py),
# timed in CPU seconds: on this shared machine a wall time mostly measures the other sessions.
# Python caches the file's bytecode, as it does for the dag-processor, so each side is warmed
# once before it is timed (see parse_seconds).
IMPORT_TIME = """
import importlib.machinery, importlib.util, sys, time
import airflow.sdk
start = time.process_time()
loader = importlib.machinery.SourceFileLoader("unusual_prefix_dag", sys.argv[1])
spec = importlib.util.spec_from_loader("unusual_prefix_dag", loader)
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
loader.exec_module(module)
print(time.process_time() - start)
"""
# Bytecode is written as an installed package and a dag-processor have it, whatever this
# session's environment says.
PARSE_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

# What the dag-processor does after parsing a file (timed in CPU seconds); the JSON's size, the
# tasks read back and the DAG's shape (task ids, edges) go to a file: Airflow may print on stdout
# on a first run.
SERIALIZE = """
import json, runpy, sys, time
from airflow.serialization.serialized_objects import DagSerialization
dag = runpy.run_path(sys.argv[1])["dag"]
start = time.process_time()
data = DagSerialization.to_dict(dag)
seconds = time.process_time() - start
restored = DagSerialization.from_dict(data)
summary = {
    "seconds": seconds,
    "bytes": len(json.dumps(data)),
    "tasks": len(restored.task_dict),
    "task_ids": list(dag.task_dict),
    "edges": [[up, t.task_id] for t in dag.tasks for up in sorted(t.upstream_task_ids)],
}
with open(sys.argv[2], "w") as out:
    json.dump(summary, out)
"""


def serialized(path) -> dict:
    out = path.with_suffix(".serialized.json")
    run([sys.executable, "-c", SERIALIZE, str(path), str(out)])
    return json.loads(out.read_text())


def _argument(text: str, name: str) -> str:
    """The source of a one-line ``name=...,`` argument of the DAG(...) call."""
    found = re.search(rf"^    {name}=(.*),$", text, re.M)
    return found.group(1) if found else "None"


def empty_operator_dag(dag_file_text: str, shape: dict) -> str:
    """What a user would write by hand for the scaffolded DAG: the same task ids, edges (a
    mapped task as a plain one) and schedule, EmptyOperator tasks."""
    names = {task_id: re.sub(r"\W", "_", task_id) for task_id in shape["task_ids"]}
    downstream: dict[str, list[str]] = {}
    for up, down in shape["edges"]:
        downstream.setdefault(up, []).append(names[down])
    tasks = "\n".join(f'    {n} = EmptyOperator(task_id="{t}")' for t, n in names.items())
    links = "\n".join(
        f"    {names[up]} >> [{', '.join(downs)}]" for up, downs in downstream.items()
    )
    return f"""import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, CronTriggerTimetable

with DAG(
    dag_id="baseline_{len(names)}",
    schedule={_argument(dag_file_text, "schedule")},
    start_date={_argument(dag_file_text, "start_date")},
    catchup=False,
    default_args={{"owner": "airflow", "retries": 1, "retry_delay": datetime.timedelta(minutes=5)}},
) as dag:
{tasks}

{links}
"""


def scaffold(job_file, config, steps: int) -> str:
    command = [str(BIN / "dagster-airflow"), "scaffold", f"synthetic_{steps}", "-f", str(job_file)]
    return run([*command, "-e", str(config)], cwd=job_file.parent).stdout


def import_seconds(path) -> float:
    """CPU seconds to import the DAG file as the dag-processor does, in a fresh process that has
    imported airflow.sdk (the operator's module is imported by the file, and counted)."""
    done = run([sys.executable, "-c", IMPORT_TIME, str(path)], env=PARSE_ENV)
    return float(done.stdout.strip())


def measure_size(folder, steps: int) -> tuple[list[Row], float]:
    """The rows of one size, and the median time to scaffold it."""
    job_file, config = write_full_job(folder, steps)
    scaffold_seconds = statistics.median(
        wall(lambda: scaffold(job_file, config, steps)) for _ in range(SCAFFOLD_REPEATS)
    )
    ours = folder / f"dag_{steps}.py"
    ours.write_text(scaffold(job_file, config, steps))
    shape = serialized(ours)
    baseline = folder / f"baseline_{steps}.py"
    baseline.write_text(empty_operator_dag(ours.read_text(), shape))
    theirs = serialized(baseline)
    assert shape["tasks"] == theirs["tasks"] == steps, (shape["tasks"], theirs["tasks"])
    assert sorted(shape["edges"]) == sorted(theirs["edges"])
    what = "EmptyOperator DAG, same tasks, edges and schedule"
    import_seconds(ours), import_seconds(baseline)  # bytecode written, as a deployment has it
    repeats, serialize_repeats = REPEATS[steps], SERIALIZE_REPEATS[steps]
    parse = paired_medians(lambda: import_seconds(ours), lambda: import_seconds(baseline), repeats)
    serialize = paired_medians(
        lambda: serialized(ours)["seconds"],
        lambda: serialized(baseline)["seconds"],
        serialize_repeats,
    )
    rows = [
        Row(
            f"parse scaffolded DAG, {steps} steps",
            *parse,
            "s",
            "<= 1.2",
            f"{what} (CPU seconds, median of {repeats})",
        ),
        Row(
            f"serialize it (to_dict), {steps} steps",
            *serialize,
            "s",
            "<= 1.5",
            f"the same (median of {serialize_repeats}, a fresh process each)",
        ),
        Row(
            f"serialized JSON, {steps} steps (KB)",
            shape["bytes"] / 1024,
            theirs["bytes"] / 1024,
            "K",
            "<= 2",
            "the same",
        ),
        Row(
            f"DAG file, {steps} steps (KB)",
            ours.stat().st_size / 1024,
            baseline.stat().st_size / 1024,
            "K",
            "<= 1.5",
            "the same",
        ),
    ]
    return rows, scaffold_seconds


def main() -> list[Row]:
    folder = SCRATCH / "dag_files"
    rows, scaffold_seconds = [], {}
    for steps in SIZES:
        size_rows, scaffold_seconds[steps] = measure_size(folder, steps)
        rows += size_rows

    # Scale: 1,000 steps under 10 s, and growth no faster than linear: each tenfold step count
    # at most multiplies the time by ten. (A per-step cost from differences of these times would
    # be noise: the fixed cost of importing Dagster and loading the job dominates.)
    t10, t100, t1000 = (scaffold_seconds[n] for n in SIZES)
    rows.append(
        Row("scaffold 1,000 steps (s, against 10 s)", t1000, 10.0, "s", "<= 1.0", "10 s target")
    )
    rows.append(
        Row(
            "scaffold time growth per tenfold steps",
            max(t100 / t10, t1000 / t100),
            10.0,
            "x",
            "<= 1.0",
            "tenfold, what linear growth from zero would give",
            f"scaffold 10/100/1,000 steps: {t10:.2f}/{t100:.2f}/{t1000:.2f} s (median of "
            f"{SCAFFOLD_REPEATS}); {max(t1000 - t10, 0) / 990 * 1000:.2f} ms per added step",
        )
    )
    return rows


if __name__ == "__main__":
    print_table(main())
