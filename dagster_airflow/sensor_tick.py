"""A sensor's tick on the wire: what the sensor task asks the Dagster side, what comes back,
and the Airflow names a tick's run requests get (stdlib only; both sides use it)."""

from __future__ import annotations

import hashlib
import re

# The line of the evaluation's standard output that holds its result (JSON after the mark); the
# user's code may print anything before it.
RESULT_MARK = "dagster-airflow sensor tick: "
# The task id of a sensor DAG's one task.
SENSOR_TASK_ID = "evaluate_sensor"
# Airflow's default allowed_run_id_pattern: a run id of other characters is refused.
_RUN_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.~:+-]")


def run_id_for(sensor_name: str, run_key: str) -> str:
    """The Airflow run id of a run key's DAG run: the same key of the same sensor gives the same
    id, so Airflow refuses a second run as Dagster skips a run key already used. Readable where
    the key is; a key with other characters (or a long one) ends in a hash of the whole key."""
    readable = _RUN_ID_UNSAFE.sub("_", run_key)
    run_id = f"dagster_sensor__{_RUN_ID_UNSAFE.sub('_', sensor_name)}__{readable[:120]}"
    if readable != run_key or len(readable) > 120:
        run_id += "__" + hashlib.sha256(run_key.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return run_id


def cursor_variable(dag_id: str) -> str:
    """The Airflow Variable that keeps a sensor DAG's cursor between ticks (delete it to reset
    the cursor, as Dagster's UI resets a sensor's)."""
    return f"dagster_sensor_cursor__{dag_id}"
