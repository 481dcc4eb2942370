"""The test kit's warm `airflow` command (testing/warm_command.py): each command in a process of
its own, as a fresh `airflow` would run it, or a fresh `airflow` where a fork could differ."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from dagster_airflow.testing.airflow_home import AirflowHome

DAG = """
import os
from airflow.sdk import DAG, task

with DAG("{dag_id}", schedule=None):

    @task
    def show():
        from airflow.sdk.execution_time.supervisor import in_process_api_server

        conn = os.environ.get("AIRFLOW_CONN_LATE")
        # How often this process's task found the execution API's app already built.
        found = in_process_api_server.cache_info().hits
        return {{"ppid": os.getppid(), "pid": os.getpid(), "conn": conn, "found": found}}

    show()
"""


def test_commands_run_warm_in_a_process_of_their_own_with_their_own_environment(tmp_path):
    home = AirflowHome(tmp_path / "airflow")
    try:
        home.install(DAG.format(dag_id="shows"), "shows.py")
        first = home.dags_test("shows")
        home.add_connection("late", "http://example.com")  # after the server started
        second = home.dags_test("shows")
        server = home._warm.process.pid
    finally:
        home.close()
    assert first.succeeded and second.succeeded, first.output + second.output
    assert first.xcoms["show"]["conn"] is None
    assert second.xcoms["show"]["conn"] == "http://example.com"
    # `dags test` runs its tasks in its own process: each a fork of the server, not the server.
    assert first.xcoms["show"]["ppid"] == second.xcoms["show"]["ppid"] == server
    assert first.xcoms["show"]["pid"] != second.xcoms["show"]["pid"]
    # Each fork found the execution API's app the server built (a cold command builds its own).
    assert first.xcoms["show"]["found"] >= 1 and second.xcoms["show"]["found"] >= 1


def test_a_setting_airflow_reads_at_import_changed_later_runs_the_command_cold(tmp_path):
    home = AirflowHome(tmp_path / "airflow")
    try:
        home.migrate()
        home.install(DAG.format(dag_id="in_the_first_folder"), "first.py")
        assert _dag_ids(home) == ["in_the_first_folder"]
        other = tmp_path / "other_dags"
        other.mkdir()
        (other / "second.py").write_text(DAG.format(dag_id="in_the_second_folder"))
        # Airflow computes its DAGs folder once, at import: a fork of the server would still
        # list the first folder.
        home.env["AIRFLOW__CORE__DAGS_FOLDER"] = str(other)
        assert _dag_ids(home) == ["in_the_second_folder"]
    finally:
        home.close()


def test_a_command_past_its_timeout_is_stopped_and_the_next_one_runs(tmp_path):
    home = AirflowHome(tmp_path / "airflow")
    pid_file = tmp_path / "pid"
    home.install(
        "# an airflow DAG file (Airflow's safe mode parses only those that say so)\n"
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)\n",
        "hangs.py",
    )
    try:
        home.migrate()  # the server is up: what follows is the command's own time
        try:
            home.airflow("dags", "list", "--local", timeout=15)  # parses the file that hangs
        except subprocess.TimeoutExpired:
            pass
        else:
            raise AssertionError("the command that hangs was not stopped at its timeout")
        stat = Path(f"/proc/{pid_file.read_text()}/stat")
        assert not stat.exists(), "the command's process runs on after its timeout"
        assert home.airflow("version").returncode == 0
    finally:
        home.close()


def _dag_ids(home: AirflowHome) -> list[str]:
    done = home.airflow("dags", "list", "--output", "json", "--local")
    assert done.returncode == 0, done.stderr
    (listing,) = [line for line in done.stdout.splitlines() if line.startswith("[")]  # not warnings
    return sorted(dag["dag_id"] for dag in json.loads(listing))
