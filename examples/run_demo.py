"""`make demo`: scaffold the demo job into a fresh Airflow home and run it with `airflow dags test`.

Everything lands under .demo/ in the repository: the Airflow home (SQLite), the DAG file, the
step outputs, and the full Airflow output in .demo/dags-test.log.
"""

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

from dagster_airflow.model import dagster_run_id
from dagster_airflow.storage.filesystem import FilesystemStorage
from dagster_airflow.testing.airflow_home import AirflowHome

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"


def main() -> int:
    shutil.rmtree(DEMO, ignore_errors=True)
    home = AirflowHome(DEMO / "airflow")
    storage_dir = DEMO / "storage"
    print("1. Scaffolding examples/demo.py:demo_pipeline into", home.dags_folder)
    scaffold = [
        str(Path(sys.executable).parent / "dagster-airflow"),
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
    (DEMO / "dags-test.log").write_text(result.output)
    for task_id, state in sorted(result.states.items()):
        print(f"   {task_id:<20} {state}")
    if not result.succeeded:
        print(f"The DAG run failed; Airflow's output is in {DEMO / 'dags-test.log'}")
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
    sys.exit(main())
