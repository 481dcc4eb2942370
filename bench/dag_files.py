"""DAG parse time against hand-written EmptyOperator DAGs, and scaffolding at scale.

Parse: for synthetic jobs of 10, 100 and 1,000 steps, the time to import the scaffolded DAG file
in a fresh process that has already imported airflow.sdk, against a DAG with the same task ids and
edges made of EmptyOperator (target: ratio <= 1.2 at every size).
Scale: scaffolding the 1,000-step job (under 10 s, and growing no faster than linearly from 10
to 1,000 steps), the file's size, and Airflow serializing that DAG.
"""

from __future__ import annotations

import json
import statistics
import sys

from measure import BIN, SCRATCH, Row, paired_medians, print_table, run, wall
from synthetic_job import edges, write_job

SIZES = (10, 100, 1000)
REPEATS = 7
SCAFFOLD_REPEATS = 3

IMPORT_TIME = """
import sys, time, runpy
import airflow.sdk
start = time.perf_counter()
runpy.run_path(sys.argv[1])
print(time.perf_counter() - start)
"""

SERIALIZE = """
import json, runpy, sys
from airflow.serialization.serialized_objects import DagSerialization
dag = runpy.run_path(sys.argv[1])["dag"]
data = DagSerialization.to_dict(dag)
restored = DagSerialization.from_dict(data)
summary = {"tasks": len(restored.task_dict), "bytes": len(json.dumps(data))}
with open(sys.argv[2], "w") as out:  # not stdout: Airflow may print there on a first run
    json.dump(summary, out)
"""


def empty_operator_dag(steps: int) -> str:
    """What a user would write by hand: the same task ids and edges, EmptyOperator tasks."""
    names = [f"step_{i:04d}" for i in range(steps)]
    downstream: dict[int, list[int]] = {}
    for up, down in edges(steps):
        downstream.setdefault(up, []).append(down)
    tasks = "\n".join(f'    {n} = EmptyOperator(task_id="{n}")' for n in names)
    links = "\n".join(
        f"    {names[up]} >> [{', '.join(names[d] for d in downs)}]"
        for up, downs in downstream.items()
    )
    return f"""import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG(
    dag_id="baseline_{steps}",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    catchup=False,
    default_args={{"owner": "airflow", "retries": 1, "retry_delay": datetime.timedelta(minutes=5)}},
) as dag:
{tasks}

{links}
"""


def scaffold(job_file, steps: int):
    return run(
        [str(BIN / "dagster-airflow"), "scaffold", f"synthetic_{steps}", "-f", str(job_file)],
        cwd=job_file.parent,
    ).stdout


def import_seconds(path) -> float:
    return float(run([sys.executable, "-c", IMPORT_TIME, str(path)]).stdout.strip())


def main() -> list[Row]:
    folder = SCRATCH / "dag_files"
    rows, scaffold_seconds = [], {}
    for steps in SIZES:
        job_file = write_job(folder, steps)
        scaffold_seconds[steps] = statistics.median(
            wall(lambda job_file=job_file, steps=steps: scaffold(job_file, steps))
            for _ in range(SCAFFOLD_REPEATS)
        )
        ours = folder / f"dag_{steps}.py"
        ours.write_text(scaffold(job_file, steps))
        baseline = folder / f"baseline_{steps}.py"
        baseline.write_text(empty_operator_dag(steps))
        mine, theirs = paired_medians(
            lambda ours=ours: import_seconds(ours),
            lambda baseline=baseline: import_seconds(baseline),
            REPEATS,
        )
        rows.append(
            Row(
                f"parse scaffolded DAG, {steps} steps",
                mine,
                theirs,
                "s",
                "<= 1.2",
                f"EmptyOperator DAG, same tasks and edges (median of {REPEATS})",
            )
        )

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
    summary = folder / "serialized_1000.json"
    run([sys.executable, "-c", SERIALIZE, str(folder / "dag_1000.py"), str(summary)])
    serialized = json.loads(summary.read_text())
    size = (folder / "dag_1000.py").stat().st_size
    baseline_size = (folder / "baseline_1000.py").stat().st_size
    rows.append(
        Row(
            "DAG file size, 1,000 steps (KB)",
            size / 1024,
            baseline_size / 1024,
            "K",
            "",
            "EmptyOperator DAG file",
            f"Airflow serialized it: {serialized['tasks']} tasks, "
            f"{serialized['bytes'] / 1024:.0f} KB of JSON",
        )
    )
    assert serialized["tasks"] == 1000
    return rows


if __name__ == "__main__":
    print_table(main())
