"""`make demo`: scaffold the demo job into a fresh Airflow home and run it with `airflow dags test`.

Everything lands under .demo/ in the repository: the Airflow home (SQLite), the DAG file, the
step outputs, and the full Airflow output in .demo/dags-test.log. The step server the run starts
(docs/step-server.md) listens in a runtime directory of the demo's own and is stopped at the end,
with `dagster-airflow servers --stop`, so the demo leaves no process behind.
"""

import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from dagster_airflow.model import dagster_run_id
from dagster_airflow.step_server.protocol import RUNTIME_DIR_ENV_VAR
from dagster_airflow.storage.filesystem import FilesystemStorage
from dagster_airflow.testing.airflow_home import AirflowHome

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
CLI = str(Path(sys.executable).parent / "dagster-airflow")


def main(argv: list[str]) -> int:
    """``python examples/run_demo.py [DIR]``: the demo in DIR (default .demo), made afresh."""
    demo = Path(argv[0]).absolute() if argv else DEMO
    shutil.rmtree(demo, ignore_errors=True)
    # In /tmp, not .demo/: a socket's path has at most 107 bytes, and a clone's path can be long.
    servers = tempfile.mkdtemp(prefix="da-demo-", dir="/tmp")
    try:
        return run_demo(demo, AirflowHome(demo / "airflow", env={RUNTIME_DIR_ENV_VAR: servers}))
    finally:
        print(f"5. Stopping the demo's step servers in {servers}: dagster-airflow servers --stop")
        stop = [CLI, "servers", "--stop", "--runtime-dir", servers]
        done = subprocess.run(stop, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        print("\n".join(f"   {line}" for line in (done.stdout + done.stderr).splitlines()))
        shutil.rmtree(servers, ignore_errors=True)


def run_demo(demo: Path, home: AirflowHome) -> int:
    storage_dir = demo / "storage"
    print("1. Scaffolding examples/demo.py:demo_pipeline into", home.dags_folder)
    scaffold = [
        CLI,
        "scaffold",
        "demo_pipeline",
        "-f",
        "examples/demo.py",
        "-e",
        "examples/demo.yml",
        "--storage-option",
        f"base_dir={storage_dir}",
        "--install",
    ]
    subprocess.run(scaffold, cwd=ROOT, env=home.env, check=True)
    print("2. Migrating Airflow's SQLite database")
    home.migrate()
    print("3. Running `airflow dags test demo_pipeline` (each step in its own process)")
    result = home.dags_test("demo_pipeline")
    (demo / "dags-test.log").write_text(result.output)
    for task_id, state in sorted(result.states.items()):
        print(f"   {task_id:<20} {state}")
    if not result.succeeded:
        print(f"The DAG run failed; Airflow's output is in {demo / 'dags-test.log'}")
        return 1
    run_id = next(iter(result.xcoms.values()))["result"].split("/")[-3]
    storage = FilesystemStorage(base_dir=str(storage_dir))
    print(f"4. Results of Dagster run {run_id}, read back from {storage_dir}:")
    for task_id in ("multiply_the_word", "count_letters", "summarize"):
        with storage.open_read(storage.key(run_id, task_id, "result")) as stream:
            print(f"   {task_id:<20} {pickle.load(stream)!r}")
    assert run_id == dagster_run_id("demo_pipeline", result.run_id)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
