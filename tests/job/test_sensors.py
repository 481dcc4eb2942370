"""A sensor's tick on the Dagster side, compared with Dagster's own evaluation of the same tick
(cursor included), in process and through `dagster-airflow evaluate-sensor`; which sensors are
mapped and the sentence for those that are not (issue 25, point 3)."""

from __future__ import annotations

import json
import subprocess

import pytest

from dagster_airflow.errors import CodeLocationError
from dagster_airflow.job.sensors import evaluate_sensor, location_sensors
from dagster_airflow.model import CodeLocation
from dagster_airflow.sensor_tick import RESULT_MARK, run_id_for
from tests.conftest import CLI, JOBS, ROOT
from tests.jobs.project import sensors

LOCATION = CodeLocation(
    python_file=str(JOBS / "project" / "definitions.py"), working_directory=str(ROOT)
)


def dagster_tick(cursor: str | None) -> dict:
    """Dagster's own evaluation of the sensor's tick, as plain data."""
    import dagster as dg

    from tests.jobs.project.definitions import defs

    repository = defs.get_repository_def()
    sensor = repository.get_sensor_def("inbox_sensor")
    context = dg.build_sensor_context(
        cursor=cursor, repository_def=repository, instance=dg.DagsterInstance.ephemeral()
    )
    data = sensor.evaluate_tick(context)
    return {
        "run_requests": [
            {
                "run_key": r.run_key,
                "run_config": r.run_config,
                "tags": r.tags,
                "partition_key": r.partition_key,
                "job_name": r.job_name,
            }
            for r in data.run_requests or []
        ],
        "skip_reason": data.skip_message,
        "cursor": data.cursor,
    }


@pytest.fixture
def inbox(tmp_path, monkeypatch):
    folder = tmp_path / "inbox"
    folder.mkdir()
    for name in ("east-1.csv", "west-1.csv", "notes.txt"):
        (folder / name).write_text("")
    monkeypatch.setenv(sensors.INBOX_ENV, str(folder))
    return folder


@pytest.mark.parametrize("cursor", [None, "east-1.csv", "west-1.csv"])
def test_a_tick_is_dagsters_tick_with_its_cursor(inbox, cursor):
    ours = evaluate_sensor(LOCATION, "inbox_sensor", cursor)

    assert ours == dagster_tick(cursor)
    if cursor == "west-1.csv":  # nothing after the cursor: Dagster's skip reason
        assert ours["run_requests"] == []
        assert ours["skip_reason"] == "no file after 'west-1.csv'"
    else:
        assert ours["cursor"] == "west-1.csv"
        assert ours["run_requests"][-1]["partition_key"] == "west"
        assert ours["run_requests"][-1]["tags"]["inbox/file"] == "west-1.csv"


def test_a_tick_through_the_command_a_sensor_task_runs_is_dagsters(inbox, monkeypatch):
    request = {"code_location": LOCATION.to_dict(), "sensor_name": "inbox_sensor", "cursor": None}

    done = subprocess.run(
        [CLI, "evaluate-sensor"], input=json.dumps(request), capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr
    line = done.stdout.splitlines()[-1]
    assert line.startswith(RESULT_MARK)
    assert json.loads(line[len(RESULT_MARK) :]) == json.loads(json.dumps(dagster_tick(None)))


def test_a_sensor_that_is_not_in_the_location_is_one_sentence():
    with pytest.raises(CodeLocationError) as raised:
        evaluate_sensor(LOCATION, "nope", None)

    assert str(raised.value) == (
        f"sensor 'nope' is not in file {LOCATION.python_file!r}; its sensors are: "
        "inbox_failures, inbox_sensor; scaffold the project again."
    )


def test_mapped_sensors_and_one_sentence_for_the_others():
    plans, unmapped = location_sensors(LOCATION)

    inbox = next(p for p in plans if p.name == "inbox_sensor")
    assert inbox.jobs == ("inbox_job",)
    assert inbox.minimum_interval_seconds == 45
    assert inbox.running is False
    assert (
        "sensor 'inbox_failures' is not mapped: it is a run status sensor, which Airflow has no "
        "counterpart for (an Airflow callback or a DAG on the job's assets may do)."
    ) in unmapped


def test_a_run_key_gives_one_airflow_run_id():
    assert run_id_for("inbox_sensor", "east-1.csv") == "dagster_sensor__inbox_sensor__east-1.csv"
    odd = run_id_for("inbox_sensor", "a b/c")
    assert odd.startswith("dagster_sensor__inbox_sensor__a_b_c__")
    assert odd != run_id_for("inbox_sensor", "a_b_c") != run_id_for("inbox_sensor", "a b c")
    assert run_id_for("inbox_sensor", "x" * 500) != run_id_for("inbox_sensor", "x" * 501)
    assert len(run_id_for("inbox_sensor", "x" * 500)) < 250
