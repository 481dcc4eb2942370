"""Dagster schedules, tags and pools as Airflow sees them (docs/scheduling.md): a static schedule
in Berlin time, and a schedule function that skips weekends."""

import dagster as dg


@dg.op(pool="warehouse")
def extract() -> int:
    return 42


@dg.op(tags={"dagster/priority": "5"})
def publish(value: int) -> str:
    return f"published {value}"


@dg.job(tags={"team": "finance", "dagster/max_runtime": "3600"})
def nightly_report():
    publish(extract())


nightly = dg.ScheduleDefinition(
    job=nightly_report,
    cron_schedule="15 5 * * 1-5",
    execution_timezone="Europe/Berlin",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


@dg.op(config_schema={"day": str})
def load(context) -> str:
    return context.op_config["day"]


@dg.job
def daily_load():
    load()


@dg.schedule(job=daily_load, cron_schedule="0 6 * * *", execution_timezone="Europe/Berlin")
def weekday_loads(context: dg.ScheduleEvaluationContext):
    when = context.scheduled_execution_time
    if when.weekday() >= 5:
        return dg.SkipReason(f"no load on {when.strftime('%A')}s")
    return dg.RunRequest(run_config={"ops": {"load": {"config": {"day": f"{when:%Y-%m-%d}"}}}})


defs = dg.Definitions(jobs=[nightly_report, daily_load], schedules=[nightly, weekday_loads])
