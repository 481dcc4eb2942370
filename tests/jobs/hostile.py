"""Jobs whose descriptions, asset keys and op names carry what an attacker would put there
(tests/scaffold/test_dag_is_data.py): quotes, triple quotes, backslashes, newlines, U+2028, NUL,
Airflow and shell templates, a bidirectional control, and code that marks the environment if it
ever runs."""

import dagster as dg

PAYLOAD = '""",__import__("os").environ.__setitem__("PWNED", "1"),"""'
HOSTILE = f'q\'"""\\ \n\r\t\u2028\x00 {{{{ ds }}}} ${{HOME}} é \u202e {PAYLOAD}'
LONG = "x" * 260  # Airflow's task ids hold 250 characters


@dg.op(description=HOSTILE, config_schema=dg.Permissive())
def first(context):
    return dict(context.op_config)


@dg.job(description=HOSTILE)
def hostile_job():
    first()


@dg.multi_asset(outs={"made": dg.AssetOut(key=dg.AssetKey(["hostile", HOSTILE]))}, name="make")
def make():
    return 1


hostile_assets = dg.define_asset_job("hostile_assets", selection=[make])


@dg.op(name=LONG + "_a")
def long_a():
    return 1


@dg.op(name=LONG + "_b")
def long_b(value):
    return value


@dg.job
def long_keys():
    long_b(long_a())


# Where a job's tags, an op's pool and a schedule's tags and run config land in the DAG file.
SHORT = HOSTILE[:60]  # a DAG tag holds 100 characters
WORD = "q'\"\"\"\\{{ds}}${HOME}\u202e__import__('os')"  # a pool name has no white space


@dg.op(pool=WORD, config_schema=dg.Permissive())
def pooled(context):
    return dict(context.op_config)


@dg.job(tags={"team": SHORT})
def hostile_tags():
    pooled()


hostile_schedule = dg.ScheduleDefinition(
    name="hostile_schedule",
    job=hostile_tags,
    cron_schedule="0 3 * * *",
    description=HOSTILE,
    tags={"source": SHORT},
    run_config={"ops": {"pooled": {"config": {HOSTILE: HOSTILE}}}},
)


defs = dg.Definitions(
    assets=[make],
    jobs=[hostile_job, hostile_assets, long_keys, hostile_tags],
    schedules=[hostile_schedule],
)
