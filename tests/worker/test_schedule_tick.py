"""A schedule function's tick, evaluated by the worker at a DAG run's logical date, is Dagster's
own evaluation of that tick: the same run config, tags and partition, or the same SkipReason.

The logical dates are the next ticks DagsterCronTimetable gives (across Berlin's spring-forward
night); the worker runs in this process for speed, through the request JSON a runner hands it;
the oracle is ``schedule.evaluate_tick(build_schedule_context(scheduled_execution_time=...))``.
"""

from __future__ import annotations

import datetime
import io
import json
import uuid

import dagster as dg
import pendulum
from airflow.timetables.base import TimeRestriction

from dagster_airflow.model import CodeLocation, StepRequest
from dagster_airflow.ui.timetable import DagsterCronTimetable
from dagster_airflow.worker.execute import execute_step
from tests.conftest import JOBS, ROOT
from tests.jobs.project import schedules

PROJECT = CodeLocation(
    python_file=str(JOBS / "project" / "definitions.py"), working_directory=str(ROOT)
)


def worker_tick(location: CodeLocation, job: str, schedule: str, at: datetime.datetime):
    """(exit code, the worker's events) for the tick of ``schedule`` at ``at``."""
    request = StepRequest(
        code_location=location,
        job_name=job,
        step_key="dagster_schedule_tick",
        run_id=str(uuid.uuid4()),
        logical_date=at.isoformat(),
        schedule_name=schedule,
    )
    out = io.StringIO()
    code = execute_step(StepRequest.from_json(request.to_json()).to_json(), out)
    events = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    return code, events


def timetable_ticks(cron, timezone: str, start: datetime.datetime, count: int):
    timetable = DagsterCronTimetable(cron, timezone=timezone)
    restriction = TimeRestriction(earliest=pendulum.instance(start), latest=None, catchup=True)
    ticks, last = [], None
    for _ in range(count):
        info = timetable.next_dagrun_info(
            last_automated_data_interval=last, restriction=restriction
        )
        ticks.append(info.logical_date)
        last = info.data_interval
    return ticks


def test_each_tick_is_dagsters_evaluation_of_it_skips_included():
    schedule = schedules.weekday_loads
    start = datetime.datetime(2026, 3, 26, tzinfo=datetime.UTC)  # a Thursday; DST on the 29th
    ticks = timetable_ticks(schedule.cron_schedule, "UTC", start, 8)
    skipped = 0
    for at in ticks:
        with dg.build_schedule_context(scheduled_execution_time=at) as context:
            dagster = schedule.evaluate_tick(context)

        code, events = worker_tick(PROJECT, "daily_load", "weekday_loads", at)

        assert code == 0, events
        tick = next(e for e in events if e["dagster_airflow_event"] == "SCHEDULE_TICK")
        ours = tick["metadata"]
        if dagster.run_requests:
            (request,) = dagster.run_requests
            assert ours["skip_reason"] is None
            assert ours["run_config"] == request.run_config
            assert ours["tags"] == dict(request.tags)
        else:
            skipped += 1
            assert (
                ours["skip_reason"] == f"schedule 'weekday_loads' skipped: {dagster.skip_message}"
            )
            assert tick["message"] == ours["skip_reason"]
    assert 0 < skipped < len(ticks)  # the weekend's ticks skipped, the weekdays' ran


SEVERAL = """
import dagster as dg

@dg.op
def ping():
    return 1

@dg.job
def fan_out():
    ping()

@dg.schedule(job=fan_out, cron_schedule="@daily")
def two_runs(context):
    yield dg.RunRequest(run_key="a")
    yield dg.RunRequest(run_key="b")

@dg.schedule(job=fan_out, cron_schedule="@hourly")
def broken(context):
    raise ValueError("no warehouse today")

defs = dg.Definitions(jobs=[fan_out], schedules=[two_runs, broken])
"""


def test_several_run_requests_and_a_failing_function_fail_the_tick_in_one_sentence(tmp_path):
    jobs = tmp_path / "several.py"
    jobs.write_text(SEVERAL)
    location = CodeLocation(python_file=str(jobs))
    at = datetime.datetime(2026, 12, 7, tzinfo=datetime.UTC)

    code, events = worker_tick(location, "fan_out", "two_runs", at)

    assert code == 2  # final: a tick is not retried, as in Dagster
    failure = events[-1]
    assert failure["dagster_airflow_event"] == "STEP_FAILURE"
    assert failure["error"]["message"] == (
        "schedule 'two_runs' asked for 2 runs at 2026-12-07T00:00:00+00:00 (run keys 'a', 'b'), "
        "and a DAG run is one Dagster run; return one RunRequest per tick, or give each run a "
        "job and a schedule of its own."
    )

    code, events = worker_tick(location, "fan_out", "broken", at)

    assert code == 2
    assert events[-1]["message"] == (
        "schedule 'broken' failed to evaluate its tick at 2026-12-07T00:00:00+00:00: "
        "ValueError: no warehouse today"
    )
