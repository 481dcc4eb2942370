"""A real deployment with the LocalExecutor (the session's: scheduler, DAG processor, api-server,
triggerer on SQLite), driven through the REST API as a user would: runs, concurrent runs,
retries, clears and kills, every step forked by the warm step server."""

from __future__ import annotations

import pickle
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from dagster_airflow.model import dagster_run_id
from dagster_airflow.step_server.protocol import alive, running_servers
from dagster_airflow.storage.filesystem import FilesystemStorage
from harness.airflow_deployment import AirflowDeployment, children
from tests.conftest import JOBS, ROOT, run_cli, scaffold
from tests.e2e.test_e2e_subprocess import dagster_in_process

pytestmark = pytest.mark.airflow

JOB_FILE = str(JOBS / "deployed.py")
CHAIN = "deployed_chain"


@pytest.fixture(scope="module")
def dags(airflow_deployment: AirflowDeployment, tmp_path_factory) -> FilesystemStorage:
    """The jobs of tests/jobs/deployed.py installed as DAGs, all on one storage."""
    base_dir = tmp_path_factory.mktemp("deployed-storage")
    dag_ids = {"chain": CHAIN, "flaky_job": "deployed_flaky", "sleepy": "sleepy"}

    def install(job: str) -> None:
        option = f"base_dir={base_dir}"
        text = scaffold(job, "-f", JOB_FILE, "--dag-id", dag_ids[job], "--storage-option", option)
        airflow_deployment.install(text, f"{dag_ids[job]}.py")

    with ThreadPoolExecutor(len(dag_ids)) as pool:  # each scaffold loads Dagster: at once
        list(pool.map(install, dag_ids))
    for dag_id in dag_ids.values():
        airflow_deployment.wait_for_dag(dag_id)
    return FilesystemStorage(base_dir=str(base_dir))


def stored(storage: FilesystemStorage, dag_id: str, run_id: str, step: str):
    key = storage.key(dagster_run_id(dag_id, run_id), step, "result")
    with storage.open_read(key) as stream:
        return pickle.load(stream)


def seeded(seed: int) -> dict:
    return {"ops": {"first": {"config": {"seed": seed}}}}


def test_a_run_succeeds_with_every_step_forked_by_one_step_server(airflow_deployment, dags):
    airflow_deployment.trigger(CHAIN, "succeeds", seeded(5))

    assert airflow_deployment.wait_for_run(CHAIN, "succeeds") == "success"
    result = stored(dags, CHAIN, "succeeds", "last")
    assert result["seed"] == 5
    # Each step its own process, each forked by the one server of this code location.
    forks = {
        step: airflow_deployment.forked_step(CHAIN, "succeeds", step)
        for step in ("first", "middle", "last")
    }
    assert {step: pid for step, (pid, _) in forks.items()} == {
        "first": result["first_pid"],
        "middle": result["middle_pid"],
        "last": result["last_pid"],
    }
    (server,) = {server for _, server in forks.values()}
    assert server not in {pid for pid, _ in forks.values()}
    listed = run_cli("servers", "--runtime-dir", str(airflow_deployment.runtime_dir))
    assert listed.returncode == 0, listed.stderr
    (row,) = [line for line in listed.stdout.splitlines() if "deployed.py" in line]
    assert row.split()[0] == str(server)
    served = [s for s in running_servers(airflow_deployment.runtime_dir) if s.pid == server]
    assert served and served[0].info["code_location"]["python_file"] == JOB_FILE


def test_every_server_of_the_deployment_reports_healthy(airflow_deployment):
    parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    airflow_deployment.wait_until(
        lambda: all(airflow_deployment.health().get(p) == "healthy" for p in parts),
        120,
        f"{', '.join(parts)} healthy",
    )


def test_two_concurrent_runs_keep_their_intermediates_apart(airflow_deployment, dags):
    airflow_deployment.trigger(CHAIN, "apart-1", seeded(1))
    airflow_deployment.trigger(CHAIN, "apart-2", seeded(2))

    assert airflow_deployment.wait_for_run(CHAIN, "apart-1") == "success"
    assert airflow_deployment.wait_for_run(CHAIN, "apart-2") == "success"
    one, two = (
        airflow_deployment.rest("GET", f"/api/v2/dags/{CHAIN}/dagRuns/{run}")[1]
        for run in ("apart-1", "apart-2")
    )
    # They ran at the same time (ISO dates in UTC compare as strings).
    assert one["start_date"] < two["end_date"] and two["start_date"] < one["end_date"]
    runs = {
        run: {s: stored(dags, CHAIN, run, s) for s in ("first", "middle", "last")}
        for run in ("apart-1", "apart-2")
    }
    for run, seed in (("apart-1", 1), ("apart-2", 2)):
        outputs = runs[run]
        assert {step: output["seed"] for step, output in outputs.items()} == dict.fromkeys(
            ("first", "middle", "last"), seed
        )
        # Each step read its upstream's output of its own run.
        assert outputs["last"]["first_pid"] == outputs["first"]["first_pid"]
        assert outputs["last"]["middle_pid"] == outputs["middle"]["middle_pid"]
    assert runs["apart-1"]["first"]["first_pid"] != runs["apart-2"]["first"]["first_pid"]


def test_a_step_failing_its_first_try_succeeds_on_the_retry(airflow_deployment, dags):
    from tests.jobs.deployed import flaky_job

    airflow_deployment.trigger("deployed_flaky", "retried")

    assert airflow_deployment.wait_for_run("deployed_flaky", "retried") == "success"
    flaky = airflow_deployment.task_instances("deployed_flaky", "retried")["flaky"]
    assert (flaky["state"], flaky["try_number"]) == ("success", 2)
    first_try = airflow_deployment.task_log("deployed_flaky", "retried", "flaky", 1)
    assert "flaky fails its first try" in first_try
    # The retry's output is what Dagster's own retry of the op returns.
    assert stored(dags, "deployed_flaky", "retried", "flaky") == dagster_in_process(
        flaky_job, {}, "flaky"
    )


def test_clearing_a_middle_task_reruns_it_and_downstream_from_the_stored_upstream_output(
    airflow_deployment, dags
):
    airflow_deployment.trigger(CHAIN, "cleared", seeded(11))
    assert airflow_deployment.wait_for_run(CHAIN, "cleared") == "success"
    before = stored(dags, CHAIN, "cleared", "last")

    cleared = airflow_deployment.clear(CHAIN, "cleared", ["middle"], downstream=True)

    assert sorted(ti["task_id"] for ti in cleared) == ["last", "middle"]

    def rerun() -> bool:
        tries = airflow_deployment.task_instances(CHAIN, "cleared")
        return all(
            tries[t]["try_number"] == 2 and tries[t]["state"] == "success"
            for t in ("middle", "last")
        )

    airflow_deployment.wait_until(rerun, 300, "the cleared tasks' second tries")
    assert airflow_deployment.wait_for_run(CHAIN, "cleared") == "success"
    tries = airflow_deployment.task_instances(CHAIN, "cleared")
    assert tries["first"]["try_number"] == 1  # the upstream task did not run again
    after = stored(dags, CHAIN, "cleared", "last")
    # middle read first's stored output (same seed, same process that made it) and ran again.
    assert after["seed"] == 11
    assert after["first_pid"] == before["first_pid"]
    assert after["middle_pid"] != before["middle_pid"]
    first_uri = dags.uri(dags.key(dagster_run_id(CHAIN, "cleared"), "first", "result"))
    second_try = airflow_deployment.task_log(CHAIN, "cleared", "middle", 2)
    assert f"Loaded input 'first' from {first_uri}" in second_try


def test_marking_a_running_task_failed_stops_its_step_and_leaves_no_process(
    airflow_deployment, dags, tmp_path
):
    pid_file = tmp_path / "sleeper.pid"
    conf = {"ops": {"sleeper": {"config": {"pid_file": str(pid_file)}}}}
    airflow_deployment.trigger("sleepy", "killed", conf)
    airflow_deployment.wait_until(pid_file.exists, 300, "the sleeper's pid file")
    step = int(pid_file.read_text())
    step_pid, server = airflow_deployment.forked_step("sleepy", "killed", "sleeper")
    assert step_pid == step and alive(step)
    assert children(server)  # the step's supervisor

    airflow_deployment.set_task_state("sleepy", "killed", "sleeper", "failed")

    airflow_deployment.wait_until(lambda: not alive(step), 60, f"the end of step process {step}")
    assert airflow_deployment.wait_for_run("sleepy", "killed") == "failed"
    # Nothing of the step is left: the server forks nothing any more, and goes on serving.
    airflow_deployment.wait_until(lambda: not children(server), 30, "the step's supervisor's end")
    assert alive(server)
    log = airflow_deployment.task_log("sleepy", "killed", "sleeper")
    assert "Stopping Dagster step 'sleeper'" in log, log[-3000:]  # Airflow called on_kill


def test_a_scaffolded_1000_step_dag_loads_in_the_dag_processor_and_its_grid_opens(
    airflow_deployment, tmp_path
):
    """Issue 28: the DAG of a 1,000-step job with inputs, config for every op, daily partitions
    and dynamic mapping parses and serializes within the dag-processor's default timeout (50 s:
    past it the DAG never loads), and the UI's grid gets its structure."""
    sys.path.insert(0, str(ROOT / "bench"))
    from synthetic_job import write_full_job

    job, config = write_full_job(tmp_path, 1000)
    dag_id = "big_synthetic"
    text = scaffold("synthetic_1000", "-f", str(job), "-e", str(config), "--dag-id", dag_id)
    # Installed paused: unpaused (the deployment's default), its daily partitions' schedule
    # starts a run of 1,000 tasks at once, which holds the deployment's two task slots for the
    # rest of the session and made every later test of the deployment wait minutes for its own.
    paused = "    catchup=False,\n    is_paused_upon_creation=True,\n"
    text = text.replace("    catchup=False,\n", paused)
    assert text.count("is_paused_upon_creation=True") == 1
    dag_file = airflow_deployment.install(text, f"{dag_id}.py")
    try:
        airflow_deployment.wait_for_dag(dag_id, timeout=120)
        _check_the_big_dag(airflow_deployment, dag_id)
    finally:  # else the DAG processor parses it again every 30 s for the rest of the session
        dag_file.unlink()


def _check_the_big_dag(airflow_deployment: AirflowDeployment, dag_id: str) -> None:
    _, dag = airflow_deployment.rest("GET", f"/api/v2/dags/{dag_id}")
    assert dag["is_paused"] is True
    _, runs = airflow_deployment.rest("GET", f"/api/v2/dags/{dag_id}/dagRuns")
    assert runs["dag_runs"] == []

    status, errors = airflow_deployment.rest("GET", "/api/v2/importErrors")
    assert status == 200
    assert not [e for e in errors["import_errors"] if dag_id in e["filename"]]
    status, dags = airflow_deployment.rest("GET", f"/api/v2/dags?dag_id_pattern={dag_id}")
    assert [d["dag_id"] for d in dags["dags"]] == [dag_id]
    status, tasks = airflow_deployment.rest("GET", f"/api/v2/dags/{dag_id}/tasks")
    assert status == 200 and tasks["total_entries"] == 1000
    # The trigger form: the run config's keys and the partition, the schema kept by the DAG.
    status, details = airflow_deployment.rest("GET", f"/api/v2/dags/{dag_id}/details")
    assert set(details["params"]) == {"ops", "resources", "partition"}
    # What the grid view asks for first: the DAG's structure, one node a task.
    status, structure = airflow_deployment.rest("GET", f"/ui/grid/structure/{dag_id}")
    assert status == 200, structure
    assert len(structure) == 1000
    assert {"step_0000", "work", "gather"} <= {node["id"] for node in structure}


def test_the_scheduler_ticks_a_sensor_dag_which_runs_its_jobs_dag_once_per_run_key(
    airflow_deployment, tmp_path
):
    """Issue 25, point 3: the scheduler runs the sensor DAG on its interval; its tick triggers
    the job's DAG, which succeeds; a tick with the same run key again triggers nothing."""
    from dagster_airflow.sensor_tick import cursor_variable, run_id_for

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "west-7.csv").write_text("")
    done = run_cli(
        "scaffold", "--all", "-f", str(JOBS / "project" / "sensors.py"), "--install",
        "--force", "--dags-folder", str(airflow_deployment.home.dags_folder),
        "--runner-option", f"env={{PROJECT_INBOX: {inbox}}}",
        "--storage-option", f"base_dir={tmp_path / 'storage'}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    sensor_dag, run_id = "inbox_job__inbox_sensor", run_id_for("inbox_sensor", "west-7.csv")
    airflow_deployment.wait_for_dag("inbox_job")
    airflow_deployment.wait_for_dag(sensor_dag)

    # The sensor was STOPPED in Dagster: its DAG is paused until the user starts it.
    assert airflow_deployment.rest("GET", f"/api/v2/dags/{sensor_dag}")[1]["is_paused"] is True
    airflow_deployment.write(f"/api/v2/dags/{sensor_dag}", {"is_paused": False}, "PATCH")
    try:
        airflow_deployment.wait_until(
            lambda: (
                airflow_deployment.rest("GET", f"/api/v2/dags/inbox_job/dagRuns/{run_id}")[0] == 200
            ),
            300,
            "the sensor's run of inbox_job",
        )
        assert airflow_deployment.wait_for_run("inbox_job", run_id) == "success"
        # The cursor reset, one more tick: the same run key, and no second run.
        variable = f"/api/v2/variables/{cursor_variable(sensor_dag)}"
        airflow_deployment.write(variable, None, "DELETE")
        airflow_deployment.trigger(sensor_dag, "tick-again")
        assert airflow_deployment.wait_for_run(sensor_dag, "tick-again") == "success"
    finally:
        airflow_deployment.write(f"/api/v2/dags/{sensor_dag}", {"is_paused": True}, "PATCH")
    _, run = airflow_deployment.rest("GET", f"/api/v2/dags/inbox_job/dagRuns/{run_id}")
    assert run["conf"]["partition"] == "west"
    assert run["conf"]["ops"] == {"read_inbox_file": {"config": {"file": "west-7.csv"}}}
    # The scheduler ticks the unpaused sensor DAG too: the first tick after the reset (ours, or
    # a scheduled one just before it) is the one that met the run key again.
    _, ticks = airflow_deployment.rest("GET", f"/api/v2/dags/{sensor_dag}/dagRuns")
    logs = [
        airflow_deployment.task_log(sensor_dag, tick["dag_run_id"], "evaluate_sensor")
        for tick in ticks["dag_runs"]
    ]
    assert any("Run key 'west-7.csv' was requested before" in log for log in logs)
    _, runs = airflow_deployment.rest("GET", "/api/v2/dags/inbox_job/dagRuns")
    assert [r["dag_run_id"] for r in runs["dag_runs"]] == [run_id]


def test_the_scheduler_ticks_a_dagster_schedule_unpaused_by_its_default_status(
    airflow_deployment, tmp_path
):
    """The project's every-minute schedule (default_status RUNNING): nobody unpauses or
    triggers the DAG; the scheduler creates a run at the next minute's tick, which succeeds."""
    dag_id = "every_minute"
    project = ["-f", str(JOBS / "project" / "definitions.py"), "-d", str(ROOT)]
    storage = f"base_dir={tmp_path / 'storage'}"
    airflow_deployment.install(scaffold(dag_id, *project, "--storage-option", storage), "m.py")
    airflow_deployment.wait_for_dag(dag_id)
    runs: list[dict] = []

    def scheduled_run_ended() -> bool:
        _, body = airflow_deployment.rest(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns?run_type=scheduled"
        )
        runs[:] = (body or {}).get("dag_runs", []) if isinstance(body, dict) else []
        return any(run["state"] in ("success", "failed") for run in runs)

    try:
        _, dag = airflow_deployment.rest("GET", f"/api/v2/dags/{dag_id}")
        assert dag["is_paused"] is False
        airflow_deployment.wait_until(scheduled_run_ended, 240, "a scheduled run of every_minute")
    finally:  # the next minutes' runs would load the deployment for the other tests
        airflow_deployment.write(f"/api/v2/dags/{dag_id}", {"is_paused": True}, "PATCH")
    ended = next(run for run in runs if run["state"] in ("success", "failed"))
    assert ended["state"] == "success", airflow_deployment.task_log(
        dag_id, ended["dag_run_id"], "ping"
    )
    logical = ended["logical_date"]
    assert logical.endswith(":00Z") or logical.endswith(":00+00:00")  # a minute's tick


# A DAG that does not import dagster_airflow: which of its modules its task's process has, as
# every task process of the deployment starts.
IMPORTED_AHEAD = """
import sys

from airflow.sdk import DAG, task

with DAG(dag_id="imported_ahead", schedule=None) as dag:

    @task
    def modules():
        return sorted(m for m in sys.modules if m.startswith("dagster_airflow."))

    modules()
"""


def test_every_task_process_starts_with_the_step_modules_the_scheduler_imported(
    airflow_deployment,
):
    from tests.ui.test_listener import TASK_MODULES

    airflow_deployment.install(IMPORTED_AHEAD, "imported_ahead.py")
    airflow_deployment.wait_for_dag("imported_ahead")
    airflow_deployment.trigger("imported_ahead", "ahead")

    assert airflow_deployment.wait_for_run("imported_ahead", "ahead") == "success"
    path = "/api/v2/dags/imported_ahead/dagRuns/ahead/taskInstances/modules/xcomEntries"
    _, entry = airflow_deployment.rest("GET", f"{path}/return_value?stringify=false")
    # Forked from a LocalExecutor worker, which the scheduler forked after the plugin's listener
    # imported them (dagster_airflow.task.preload): no task of ours imports them again.
    assert set(entry["value"]) >= TASK_MODULES, entry
