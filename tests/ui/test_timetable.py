"""DagsterCronTimetable ticks exactly when Dagster's schedule would, DST included: the timetable's
own next_dagrun_info, called as Airflow's scheduler calls it, against Dagster's cron iterator
(the one its daemon ticks by), in timezones with DST across the 2026 transitions."""

from __future__ import annotations

import datetime

import pendulum
import pytest
from airflow.serialization.encoders import encode_timetable
from airflow.timetables.base import TimeRestriction
from airflow.timetables.trigger import CronTriggerTimetable
from dagster._utils.schedules import schedule_execution_time_iterator

from dagster_airflow.ui.timetable import DagsterCronTimetable
from tests.jobs.project import schedules

UTC = datetime.UTC
SPRING = datetime.datetime(2026, 3, 27, 0, 7, tzinfo=UTC)  # Europe: 2026-03-29, US: 03-08
FALL = datetime.datetime(2026, 10, 23, tzinfo=UTC)  # Europe: 2026-10-25, US: 11-01
US_SPRING = datetime.datetime(2026, 3, 6, tzinfo=UTC)
US_FALL = datetime.datetime(2026, 10, 30, tzinfo=UTC)

CRONS = [
    "30 2 * * *",  # in the spring-forward gap: Dagster fires at its end, 03:00
    "45 2 * * 1-5",
    "0 2 * * *",
    "30 1 * * *",
    "0 2,3 * * *",
    "*/30 1-3 * * *",
    "*/15 * * * *",  # every hour: the missing hour is skipped, the doubled one fires twice
    "30 * * * *",
    "@daily",
    "@hourly",
    "@weekly",
    "@monthly",
    "30 2 29 3 *",
    "15 5 * * 1-5",
    ["0 9 * * 1-5", "30 2 * * 6,0"],  # a list of crons: each tick of any of them
]


def airflow_ticks(timetable, start: datetime.datetime, count: int) -> list[datetime.datetime]:
    """The logical dates of the timetable's next runs from ``start``, as the scheduler asks."""
    restriction = TimeRestriction(earliest=pendulum.instance(start), latest=None, catchup=True)
    ticks, last = [], None
    for _ in range(count):
        info = timetable.next_dagrun_info(
            last_automated_data_interval=last, restriction=restriction
        )
        ticks.append(info.logical_date.astimezone(UTC))
        last = info.data_interval
    return ticks


def dagster_ticks(cron, timezone: str, start: datetime.datetime, count: int):
    times = schedule_execution_time_iterator(start.timestamp(), cron, timezone)
    return [next(times).astimezone(UTC) for _ in range(count)]


def count_for(cron) -> int:
    first = cron if isinstance(cron, str) else cron[0]
    return (
        3 if " 29 3 " in first else 60 if first in ("@hourly",) or "*" in first.split()[1:2] else 8
    )


@pytest.mark.parametrize(
    ("timezone", "starts"),
    [("Europe/Berlin", (SPRING, FALL)), ("America/New_York", (US_SPRING, US_FALL))],
)
@pytest.mark.parametrize("cron", CRONS, ids=str)
def test_the_timetable_ticks_when_dagster_does_across_dst(cron, timezone, starts):
    for start in starts:
        count = count_for(cron)
        ours = airflow_ticks(DagsterCronTimetable(cron, timezone=timezone), start, count)
        assert ours == dagster_ticks(cron, timezone, start, count), (cron, timezone, start)


def test_airflows_own_cron_timetable_does_not_in_the_spring_gap():
    """Why the DAG does not use CronTriggerTimetable: on 2026-03-29 in Berlin, 02:30 does not
    exist; Dagster runs at 03:00 (01:00 UTC), Airflow at 03:30."""
    gap = datetime.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert gap in dagster_ticks("30 2 * * *", "Europe/Berlin", SPRING, 5)
    theirs = airflow_ticks(CronTriggerTimetable("30 2 * * *", timezone="Europe/Berlin"), SPRING, 5)
    assert gap not in theirs
    ours = airflow_ticks(DagsterCronTimetable("30 2 * * *", timezone="Europe/Berlin"), SPRING, 5)
    assert gap in ours


def test_the_projects_schedules_tick_as_dagster_and_survive_serialization():
    for schedule in (schedules.nightly_berlin, schedules.weekday_loads):
        timezone = schedule.execution_timezone or "UTC"
        timetable = DagsterCronTimetable(schedule.cron_schedule, timezone=timezone)
        # What the scheduler reads back from the serialized DAG, through the plugin's registry.
        encoded = encode_timetable(timetable)
        assert encoded["__type"] == "dagster_airflow.ui.timetable.DagsterCronTimetable"
        back = DagsterCronTimetable.deserialize(encoded["__var"])
        assert back == timetable
        for start in (SPRING, FALL):
            expected = dagster_ticks(schedule.cron_schedule, timezone, start, 12)
            assert airflow_ticks(back, start, 12) == expected


def test_a_new_dag_starts_at_the_next_tick_as_a_dagster_schedule_turned_on():
    timetable = DagsterCronTimetable("*/5 * * * *", timezone="UTC")
    before = pendulum.now("UTC")
    restriction = TimeRestriction(
        earliest=pendulum.datetime(2020, 1, 1, tz="UTC"), latest=None, catchup=False
    )

    info = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)

    assert before <= info.logical_date <= before + datetime.timedelta(minutes=5)
    assert info.logical_date.minute % 5 == 0
