"""The worker against the team's Dagster instance (worker/instance.py), as runners start it:
`dagster-airflow execute-step` processes sharing one Dagster home on Debian's PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from dagster_airflow.model import (
    REQUEST_ENV_VAR,
    CodeLocation,
    StepRequest,
    StorageSpec,
    TaskRef,
    dagster_run_id,
)
from harness.postgres import PostgresServer, dagster_yaml, postgres_bin
from tests.conftest import CLI, JOBS

needs_postgres = pytest.mark.skipif(
    postgres_bin() is None, reason="no PostgreSQL server (make system-packages)"
)


def request(step: str, home, store, airflow_run: str, **fields) -> StepRequest:
    return StepRequest(
        code_location=CodeLocation(python_file=str(JOBS / "catalog.py")),
        job_name="catalog",
        step_key=step,
        run_id=dagster_run_id("catalog_dag", airflow_run),
        storage=StorageSpec("filesystem", {"base_dir": str(store)}),
        task=TaskRef("catalog_dag", step, airflow_run),
        partition_key="eu",
        dagster_home=str(home),
        **fields,
    )


def start(req: StepRequest) -> subprocess.Popen:
    return subprocess.Popen(
        [CLI, "execute-step"],
        env={**os.environ, REQUEST_ENV_VAR: req.to_json()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


@needs_postgres
def test_steps_that_start_together_share_one_run_and_write_safely(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with PostgresServer() as server:
        (home / "dagster.yaml").write_text(dagster_yaml(server))
        both = [
            start(request(step, home, tmp_path, "manual__together"))
            for step in ("prices", "summary")
        ]
        # summary needs its upstream steps' records: it fails, and says so, in the same run.
        outs = [process.communicate(timeout=300) for process in both]
        assert both[0].returncode == 0, outs[0]
        from dagster import DagsterInstance

        with DagsterInstance.from_config(str(home)) as dagster:
            run_id = dagster_run_id("catalog_dag", "manual__together")
            assert len(dagster.get_runs()) == 1
            kinds = [
                (e.step_key, e.dagster_event.event_type_value)
                for e in dagster.all_logs(run_id)
                if e.dagster_event
            ]
            assert kinds.count((None, "PIPELINE_START")) == 1
            assert ("prices", "STEP_SUCCESS") in kinds
            assert ("prices", "ASSET_CHECK_EVALUATION") in kinds

            # The end request ends it; a second DAG run's end with no step run says so.
            end = start(
                request("dagster_run_end", home, tmp_path, "manual__together", run_end="canceled")
            )
            out, err = end.communicate(timeout=300)
            assert end.returncode == 0, out + err
            assert dagster.get_run_by_id(run_id).status.value == "CANCELED"
            lonely = start(
                request("dagster_run_end", home, tmp_path, "manual__none", run_end="success")
            )
            out, err = lonely.communicate(timeout=300)
            assert lonely.returncode == 0, out + err
            assert "no step of this DAG run started, so there is no run to end" in out
            assert len(dagster.get_runs()) == 1


def test_a_dagster_home_without_dagster_yaml_fails_the_step_in_one_sentence(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    req = request("prices", home, tmp_path / "store", "manual__typo")
    done = subprocess.run(
        [CLI, "execute-step"],
        env={**os.environ, REQUEST_ENV_VAR: req.to_json()},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    failure = events(done.stdout)[-1]
    assert failure["dagster_airflow_event"] == "STEP_FAILURE"
    assert failure["error"]["message"] == (
        f"the Dagster home {str(home)!r} has no dagster.yaml; set dagster_home (in the DAG's "
        "DEFAULT_ARGS, or scaffold --dagster-home) to the folder, as the step sees it, whose "
        "dagster.yaml names the team's instance."
    )
    assert not list(home.iterdir())  # no SQLite instance made in a mistyped home


def test_each_forked_step_takes_its_own_copy_of_the_prepared_instance(tmp_path):
    """As the step server does: the instance is built before the fork, and each forked step runs
    against its own copy of it, as fresh as one it built itself: two steps of the same run id
    both create their run, and the server's instance never sees either."""
    import io

    from dagster_airflow.worker import instance as worker_instance
    from dagster_airflow.worker.execute import execute_step

    req = StepRequest(
        code_location=CodeLocation(python_file=str(JOBS / "prices.py")),
        job_name="prices",
        step_key="load_prices",
        run_id=dagster_run_id("prices_dag", "manual__forked"),
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
    )
    worker_instance.prepare_ephemeral_instance()
    (prepared,) = worker_instance._prepared
    try:
        for _ in range(2):
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the forked step
                code = 70
                try:
                    os.close(read)
                    out = io.StringIO()
                    code = execute_step(req.to_json(), out)
                    taken = not worker_instance._prepared
                    os.write(write, f"{code} {taken}\n{out.getvalue()}".encode())
                finally:
                    os._exit(code)
            os.close(write)
            with os.fdopen(read) as answer:
                first, output = answer.read().split("\n", 1)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, output
            assert first == "0 True", output
            assert events(output)[-1]["dagster_airflow_event"] == "STEP_SUCCESS"
        assert worker_instance._prepared == [prepared]
        assert prepared.get_runs_count() == 0
    finally:
        worker_instance._prepared.clear()
