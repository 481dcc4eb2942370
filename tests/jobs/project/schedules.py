"""The project's scheduled jobs (issue 25, points 2 and 5): a static schedule with a timezone,
schedule functions (one that skips on weekends), a job with two schedules, and the tags, pools,
priorities, executor limit and run timeout a team writes on its jobs and ops."""

import dagster as dg


@dg.op(pool="warehouse", tags={"dagster/priority": "7"})
def extract(context) -> dict:
    return {"run_tags": dict(context.run.tags), "config": dict(context.run.run_config)}


@dg.op(tags={"dagster/concurrency_key": "reports"}, config_schema={"region": str})
def report(context, extracted: dict) -> str:
    context.log.info(f"report for {context.op_config['region']}: {sorted(extracted['run_tags'])}")
    return context.op_config["region"]


@dg.job(
    tags={"team": "finance", "dagster/priority": "3", "dagster/max_runtime": "1800"},
    executor_def=dg.multiprocess_executor.configured({"max_concurrent": 2}),
)
def nightly_report():
    report(extract())


REGION_CONFIG = {"ops": {"report": {"config": {"region": "emea"}}}}

nightly_berlin = dg.ScheduleDefinition(
    name="nightly_berlin",
    job=nightly_report,
    cron_schedule="30 2 * * 1-5",
    execution_timezone="Europe/Berlin",
    run_config=REGION_CONFIG,
    tags={"shift": "night"},
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


@dg.op(config_schema={"day": str})
def load_day(context) -> str:
    return context.op_config["day"]


@dg.job
def daily_load():
    load_day()


@dg.schedule(job=daily_load, cron_schedule=["0 6 * * *", "30 18 * * 1-5"])
def weekday_loads(context: dg.ScheduleEvaluationContext):
    """A run per tick on weekdays, its config the tick's date; weekends skip."""
    when = context.scheduled_execution_time
    if when.weekday() >= 5:
        return dg.SkipReason(f"no load on {when.strftime('%A')}s")
    day = when.strftime("%Y-%m-%d %H:%M")
    return dg.RunRequest(
        run_config={"ops": {"load_day": {"config": {"day": day}}}}, tags={"load_day": day}
    )


@dg.op
def ping() -> int:
    return 1


@dg.job
def every_minute():
    ping()


minutely = dg.ScheduleDefinition(
    name="minutely",
    job=every_minute,
    cron_schedule="* * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


@dg.job
def twice_scheduled():
    ping()


morning = dg.ScheduleDefinition(name="morning", job=twice_scheduled, cron_schedule="0 8 * * *")
evening = dg.ScheduleDefinition(name="evening", job=twice_scheduled, cron_schedule="0 20 * * *")

defs = dg.Definitions(
    jobs=[nightly_report, daily_load, every_minute, twice_scheduled],
    schedules=[nightly_berlin, weekday_loads, minutely, morning, evening],
)
