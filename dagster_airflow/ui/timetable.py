"""DagsterCronTimetable: a Dagster schedule's ticks as an Airflow timetable (Airflow side).

Airflow's own CronTriggerTimetable ticks where Dagster does, except in a spring-forward gap:
for ``30 2 * * *`` in Europe/Berlin on 2026-03-29 it fires at 03:30 local, Dagster at 03:00 (the
end of the gap). Dagster's rule (``dagster._utils.schedules``, its docs' "execution times and
daylight savings time"), which this class follows for every cron of the schedule:

- a time that does not exist (the gap): a cron that repeats every hour skips it; any other cron
  fires at the end of the gap;
- a time that happens twice (fall back): a cron that repeats every hour fires at both; any
  other cron fires once, at the later one;
- a list of crons fires at each time any of them fires (Dagster's ``cron_schedule=[...]``).

Each DAG run's logical date is the tick, as Dagster's ``scheduled_execution_time``. The class
is registered by dagster-airflow's Airflow plugin: the scheduler needs that to read it back.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from dagster_airflow.task.airflow_compat import CoreCronTriggerTimetable as CronTriggerTimetable

HOUR = datetime.timedelta(hours=1)
# DST moves clocks by at most an hour: a candidate two wall-clock hours after the best one found
# is later in real time too, so the search can stop there.
SEARCH_PAST = 2 * HOUR


def _exists(local: datetime.datetime) -> bool:
    utc = local.astimezone(datetime.UTC)
    back = utc.astimezone(local.tzinfo)
    return back.replace(tzinfo=None) == local.replace(tzinfo=None)


def _ambiguous(local: datetime.datetime) -> bool:
    return local.replace(fold=0).utcoffset() != local.replace(fold=1).utcoffset()


def _end_of_gap(local: datetime.datetime) -> datetime.datetime:
    """Dagster's ``apply_post_transition``: the start of the missing hour plus the DST offset."""
    offset = local.tzinfo.dst(local + HOUR) or datetime.timedelta()
    return local.replace(minute=0, second=0, microsecond=0) + offset


def _repeats_every_hour(expression: str) -> bool:
    return croniter(expression).expanded[1] == ["*"]


def _candidates(naive: datetime.datetime, zone: ZoneInfo, hourly: bool) -> list[datetime.datetime]:
    """The instants a wall-clock time the cron matches fires at, by Dagster's rule."""
    local = naive.replace(tzinfo=zone)
    if not _exists(local):
        return [] if hourly else [_end_of_gap(local)]
    if _ambiguous(local):
        later = local.replace(fold=1)
        return [local.replace(fold=0), later] if hourly else [later]
    return [local]


def dagster_tick(
    expression: str, zone: ZoneInfo, current: datetime.datetime, after: bool
) -> datetime.datetime:
    """The first tick of one cron strictly after ``current`` (``after``), else strictly before."""
    moment = current.timestamp()
    hourly = _repeats_every_hour(expression)
    naive = current.astimezone(zone).replace(tzinfo=None)
    # An hour back (or on) so that both instants of an ambiguous wall-clock time are seen.
    cron = croniter(expression, naive - HOUR if after else naive + HOUR)
    best: datetime.datetime | None = None
    best_naive: datetime.datetime | None = None
    while True:
        found = cron.get_next(datetime.datetime) if after else cron.get_prev(datetime.datetime)
        if best_naive is not None and abs(found - best_naive) > SEARCH_PAST:
            return best.astimezone(datetime.UTC)
        for candidate in _candidates(found, zone, hourly):
            stamp = candidate.timestamp()
            if (stamp > moment if after else stamp < moment) and (
                best is None or (stamp < best.timestamp() if after else stamp > best.timestamp())
            ):
                best, best_naive = candidate, found


class DagsterCronTimetable(CronTriggerTimetable):
    """Ticks when a Dagster schedule with these crons and execution timezone would.

    :param crons: one cron string or several (Dagster's ``cron_schedule``), in Dagster's forms
        (``@daily`` ... included).
    :param timezone: the schedule's ``execution_timezone`` (an IANA name); default UTC.
    """

    def __init__(self, crons: str | Sequence[str], *, timezone: str = "UTC", **kwargs: Any):
        crons = [crons] if isinstance(crons, str) else list(crons)
        super().__init__(crons[0], timezone=timezone, **kwargs)
        from airflow.utils.dates import cron_presets

        self.crons = tuple(cron_presets.get(c, c) for c in crons)
        self.timezone_name = timezone
        self._zone = ZoneInfo(timezone)
        if len(self.crons) > 1:
            self.description = " | ".join(self.crons)

    @property
    def summary(self) -> str:
        return " | ".join(self.crons)

    def validate(self) -> None:
        for cron in self.crons:
            croniter(cron)

    def _get_next(self, current):
        return self._tick(current, after=True)

    def _get_prev(self, current):
        return self._tick(current, after=False)

    def _tick(self, current, after: bool):
        import pendulum

        ticks = [dagster_tick(c, self._zone, current, after) for c in self.crons]
        return pendulum.instance(min(ticks) if after else max(ticks))

    def next_dagrun_info(self, *, last_automated_data_interval, restriction):
        # A schedule that starts runs from its next tick on, as Dagster's does when it is
        # turned on (Airflow's would run the latest past tick at once).
        if last_automated_data_interval is None and not restriction.catchup:
            from airflow._shared.timezones.timezone import coerce_datetime, utcnow

            from dagster_airflow.task.airflow_compat import DagRunInfo

            start = self._align_to_next(coerce_datetime(utcnow()))
            if restriction.earliest is not None:
                start = max(start, self._align_to_next(restriction.earliest))
            if restriction.latest is not None and restriction.latest < start:
                return None
            return DagRunInfo.interval(start, start)
        return super().next_dagrun_info(
            last_automated_data_interval=last_automated_data_interval, restriction=restriction
        )

    def serialize(self) -> dict[str, Any]:
        return {"crons": list(self.crons), "timezone": self.timezone_name}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> DagsterCronTimetable:
        return cls(data["crons"], timezone=data["timezone"])

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, DagsterCronTimetable)
            and self.crons == other.crons
            and self.timezone_name == other.timezone_name
        )

    def __hash__(self) -> int:
        return hash((self.crons, self.timezone_name))
