"""The project's sensors: files dropped into an inbox folder start a job, one run per file.

`inbox_sensor` keeps a cursor (the last file it asked a run for) and gives each run the file's
name as run key, run config, tag and partition, as Dagster's docs show sensors; with no inbox it
skips with a reason. `inbox_failures` is a run status sensor, which Airflow has no counterpart
for: the scaffold says so in one sentence.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

# Where the inbox is: the sensor's evaluation reads it from its environment.
INBOX_ENV = "PROJECT_INBOX"
REGIONS = dg.StaticPartitionsDefinition(["east", "west"])


@dg.op(config_schema={"file": dg.Field(str, default_value="none.csv")})
def read_inbox_file(context) -> str:
    return context.op_config["file"]


@dg.op
def load_inbox_file(context, name: str) -> str:
    context.log.info(f"loaded {name} for {context.partition_key}")
    return f"{context.partition_key}:{name}"


@dg.job(partitions_def=REGIONS, tags={"team": "ingest"})
def inbox_job():
    load_inbox_file(read_inbox_file())


@dg.sensor(job=inbox_job, minimum_interval_seconds=45)
def inbox_sensor(context: dg.SensorEvaluationContext):
    inbox = os.environ.get(INBOX_ENV)
    if not inbox or not Path(inbox).is_dir():
        return dg.SkipReason(f"no inbox folder ({INBOX_ENV}={inbox!r})")
    names = sorted(p.name for p in Path(inbox).iterdir() if p.suffix == ".csv")
    new = [n for n in names if n > (context.cursor or "")]
    if not new:
        return dg.SkipReason(f"no file after {context.cursor!r}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=name,
                run_config={"ops": {"read_inbox_file": {"config": {"file": name}}}},
                tags={"inbox/file": name},
                partition_key="west" if name.startswith("west") else "east",
            )
            for name in new
        ],
        cursor=new[-1],
    )


@dg.run_failure_sensor(monitored_jobs=[inbox_job])
def inbox_failures(context: dg.RunFailureSensorContext):
    context.log.info(f"{context.dagster_run.run_id} failed")


defs = dg.Definitions(jobs=[inbox_job], sensors=[inbox_sensor, inbox_failures])
