"""A job's partitions as a DAG's schedule, and the partition each DAG run executes, checked
against Dagster's own schedule for the job."""

from __future__ import annotations

import datetime

import dagster as dg
import pytest

from dagster_airflow.errors import ConfigurationError, RunConfigError
from dagster_airflow.job.partitions import MULTI, STATIC, TIME, partition_for_run, partitioning
from examples.scheduling import defs

UTC = datetime.UTC


def job(name: str):
    return defs.resolve_job_def(name)


def dagsters_schedule_launches(job_name: str, at: datetime.datetime) -> list[str]:
    """The partitions Dagster's build_schedule_from_partitioned_job launches at a tick."""
    schedule = dg.build_schedule_from_partitioned_job(job(job_name))
    with dg.build_schedule_context(scheduled_execution_time=at) as context:
        data = schedule.evaluate_tick(context)
    return [request.partition_key for request in data.run_requests or ()]


@pytest.mark.parametrize(
    ("job_name", "at"),
    [
        ("hourly_job", datetime.datetime(2022, 5, 31, 1, 0, tzinfo=UTC)),
        ("hourly_job", datetime.datetime(2022, 6, 1, 5, 0, tzinfo=UTC)),
        ("hourly_job", datetime.datetime(2022, 6, 1, 5, 30, tzinfo=UTC)),  # between two ticks
        ("daily_job", datetime.datetime(2022, 6, 2, tzinfo=UTC)),
        ("daily_job", datetime.datetime(2023, 1, 1, tzinfo=UTC)),
    ],
)
def test_a_runs_partition_is_the_one_dagsters_schedule_launches_at_its_logical_date(job_name, at):
    ours = partition_for_run(job(job_name), None, at.isoformat())
    assert [ours] == dagsters_schedule_launches(job_name, at)


def test_the_hourly_run_at_one_oclock_executes_the_midnight_partition():
    at = "2022-05-31T01:00:00+00:00"
    assert partition_for_run(job("hourly_job"), None, at) == "2022-05-31-00:00"


def test_time_partitions_give_the_schedules_cron_and_first_launch():
    hourly = partitioning(job("hourly_job"))
    assert (hourly.kind, hourly.cron, hourly.timezone) == (TIME, "0 * * * *", "UTC")
    # Dagster's schedule first launches a partition when the first one has ended.
    assert hourly.start == datetime.datetime(2022, 5, 31, 1, 0, tzinfo=UTC)
    schedule = dg.build_schedule_from_partitioned_job(job("hourly_job"))
    assert schedule.cron_schedule == hourly.cron


def test_static_and_multi_partitions_are_triggered_with_a_partition():
    colours = partitioning(job("colours"))
    assert (colours.kind, colours.cron, colours.keys) == (STATIC, None, ("red", "green", "blue"))
    regional = partitioning(job("regional_job"))
    assert (regional.kind, regional.cron) == (MULTI, None)
    key = "2022-06-01|north"
    assert partition_for_run(job("regional_job"), key, None) == key


def test_dynamic_partitions_are_refused_in_one_sentence():
    with pytest.raises(ConfigurationError, match=r"job 'fruit_job' has dynamic partitions"):
        partitioning(job("fruit_job"))


def test_an_unknown_partition_is_named_with_a_few_valid_keys():
    with pytest.raises(RunConfigError) as refused:
        partition_for_run(job("colours"), "purple", None)
    assert str(refused.value) == (
        "partition 'purple' is not a partition of job 'colours' (valid keys: 'red', 'green', "
        "'blue'); name one of them in the conf's 'partition'."
    )
    with pytest.raises(RunConfigError, match=r"valid keys: '2022-05-31-00:00' \.\.\. '20"):
        partition_for_run(job("hourly_job"), "yesterday", None)


def test_a_run_with_no_partition_and_no_logical_date_is_told_how_to_name_one():
    with pytest.raises(RunConfigError, match=r"trigger it with conf \{'partition': \.\.\.\}"):
        partition_for_run(job("colours"), None, "2022-06-01T00:00:00+00:00")
    with pytest.raises(RunConfigError, match=r"no partition that has ended by"):
        partition_for_run(job("hourly_job"), None, "2022-05-31T00:30:00+00:00")
