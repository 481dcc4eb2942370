"""Deferral: 8 docker steps of 30 s each on a worker with 2 slots (LocalExecutor, parallelism 2,
a real deployment with its triggerer, podman's Docker API), with deferral (the default) against
the same DAG with ``deferrable: False`` in its DEFAULT_ARGS. Without deferral each step holds a
slot while its container runs (four rounds of two); deferred, a slot is held only to start and
to finish one, and the eight run at once.

A run's time is Airflow's own record of it: from queued (the REST trigger) to its end.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

# The project's harness (a deployment, podman) is a top-level folder of the repository.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fan_out import run_seconds
from measure import BIN, ROOT, SCRATCH, Row, print_table, run

from harness.airflow_deployment import AirflowDeployment
from harness.podman import PodmanService, build_python_image, podman_available
from harness.servers import free_port

STEPS, SECONDS, SLOTS = 8, 30, 2
JOB = "eight_waits"
IMAGE = "localhost/dagster-airflow-bench:latest"
JOB_TEXT = f'''"""{STEPS} independent ops that each wait {SECONDS} s, remote steps that wait."""
import time

import dagster as dg


def wait_op(index):
    seconds = dg.Field(int, default_value={SECONDS})

    @dg.op(name=f"wait_{{index}}", config_schema={{"seconds": seconds}})
    def wait(context):
        seconds = context.op_config["seconds"]
        context.log.info(f"waiting {{seconds}} s")
        time.sleep(seconds)
        return index

    return wait


@dg.job
def {JOB}():
    for index in range({STEPS}):
        wait_op(index)()
'''


def scaffold(folder: Path, dag_id: str, image: str, socket: str) -> str:
    mounts = [f"{ROOT}:{ROOT}:ro", f"{folder}:{folder}"]
    if not Path(sys.prefix).is_relative_to(ROOT):
        mounts.append(f"{sys.prefix}:{sys.prefix}:ro")
    command = [str(BIN / "dagster-airflow"), "scaffold", JOB, "-f", str(folder / "job.py")]
    command += ["--dag-id", dag_id, "--runner", "docker", "--runner-option", f"image={image}"]
    command += ["--runner-option", f"docker_url={socket}"]
    command += ["--runner-option", f"mounts={json.dumps(mounts)}"]
    command += ["--storage", "filesystem", "--storage-option", f"base_dir={folder / 'storage'}"]
    return run(command, cwd=folder).stdout


def not_deferred(text: str) -> str:
    """The same DAG file with ``deferrable: False`` in its DEFAULT_ARGS."""
    marker = "DEFAULT_ARGS = {\n"
    if marker not in text:
        raise RuntimeError("the scaffolded DAG file has no DEFAULT_ARGS = { line")
    return text.replace(marker, f'{marker}    "deferrable": False,\n', 1)


def main() -> list[Row]:
    if not podman_available():
        print("(podman and runc are not installed: bench/deferral.py skipped)")
        return []
    folder = SCRATCH / "deferral"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "job.py").write_text(JOB_TEXT)
    podman = PodmanService(folder / "podman")
    podman.start()
    deferred_dag, held_dag = f"{JOB}_deferred", f"{JOB}_held"
    try:
        path = [f"{sys.prefix}/bin", f"{sys.base_prefix}/bin", "/usr/bin", "/bin"]
        image = build_python_image(podman, folder / "image", IMAGE, path)
        text = scaffold(folder, deferred_dag, image, podman.base_url)
        settings = {"AIRFLOW__CORE__PARALLELISM": str(SLOTS)}
        with AirflowDeployment(folder / "airflow", port=free_port(), env=settings) as airflow:
            airflow.install(text, f"{deferred_dag}.py")
            held = not_deferred(scaffold(folder, held_dag, image, podman.base_url))
            airflow.install(held, f"{held_dag}.py")
            airflow.wait_for_dag(deferred_dag)
            airflow.wait_for_dag(held_dag)
            # A first run of steps that do not wait: the deployment's first worker processes
            # and containers start cold, and neither measured run should pay for that.
            warm_up = {"ops": {f"wait_{i}": {"config": {"seconds": 0}} for i in range(STEPS)}}
            airflow.trigger(held_dag, "warm_up", warm_up)
            if airflow.wait_for_run(held_dag, "warm_up") != "success":
                raise RuntimeError(f"the warm-up run of {held_dag} failed")
            deferred = run_seconds(airflow, deferred_dag, "deferred")
            without = run_seconds(airflow, held_dag, "held")
    finally:
        podman.stop()
    shape = f"{STEPS} docker steps of {SECONDS} s, {SLOTS} slots"
    return [
        Row(
            f"{shape}, deferred",
            deferred,
            without,
            "s",
            "<= 0.4",
            "the same DAG with deferrable: False",
            f"the floor is {SECONDS} s deferred, {STEPS // SLOTS * SECONDS} s held",
        )
    ]


if __name__ == "__main__":
    rows = main()
    print_table(rows)
    for row in rows:
        print(f"deferral: {row.ours:.0f} s deferred / {row.baseline:.0f} s held = {row.ratio:.2f}")
