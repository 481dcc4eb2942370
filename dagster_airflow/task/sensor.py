"""DagsterSensorOperator: a Dagster sensor's tick as one Airflow task (Airflow side).

Each run of a sensor DAG is one tick: the task reads the sensor's cursor from an Airflow
Variable, has the Dagster side evaluate the sensor in a process of its own (`dagster-airflow
evaluate-sensor`, with the subprocess runner's python, working directory and environment, as a
step gets them), triggers the job's DAG once per run request, and stores the new cursor.

Dagster's rules, kept: a run request's run key gives the DAG run's id (``run_id_for``), so a
run key this sensor already used never starts a second run (Airflow refuses the id, as
Dagster's daemon skips the key); a request without a run key always starts a run; a
``SkipReason`` skips the task with its reason. The DAG run gets the request's run config as its
conf (deep-merged over the job's run config, as any conf), its partition as ``conf["partition"]``
and its tags in ``conf["dagster_tags"]`` and the run's note (Airflow 3.2 on: 3.1's trigger takes no
note).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseOperator, Context, Variable

from dagster_airflow.errors import ConfigurationError, RunnerError
from dagster_airflow.model import RunnerSpec
from dagster_airflow.run_conf import TAGS_KEY
from dagster_airflow.sensor_tick import RESULT_MARK, SENSOR_TASK_ID, cursor_variable, run_id_for
from dagster_airflow.task.airflow_compat import AirflowSkipException

log = logging.getLogger(__name__)


class DagsterSensorOperator(BaseOperator):
    """Evaluates one tick of a Dagster sensor and triggers its jobs' DAGs.

    :param sensor_name: the Dagster sensor.
    :param code_location: where it is defined, as for DagsterOperator.
    :param job_dags: each job the sensor may request a run of -> the DAG id that runs it; a run
        request that names no job runs the first.
    :param runner: the subprocess runner's settings (``python``, ``working_dir``, ``env``) that
        the evaluation runs with; default: Airflow's Python.
    """

    ui_color = "#fde68a"

    def __init__(
        self,
        *,
        sensor_name: str,
        code_location: Mapping[str, Any],
        job_dags: Mapping[str, str],
        runner: Mapping[str, Any] | str | None = None,
        task_id: str = SENSOR_TASK_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(task_id=task_id, **kwargs)
        if not job_dags:
            raise ConfigurationError(
                f"sensor task {self.task_id!r} has no job_dags; name the DAG of each job the "
                "sensor requests runs of, as {'my_job': 'my_job'}."
            )
        self.sensor_name = sensor_name
        self.code_location = dict(code_location)
        self.job_dags = dict(job_dags)
        self.runner = runner

    def execute(self, context: Context) -> dict[str, Any]:
        key = cursor_variable(self.dag_id)
        cursor = Variable.get(key, default=None)
        tick = evaluate_tick(self.code_location, self.sensor_name, cursor, self.runner)
        if "error" in tick:
            raise RunnerError(f"sensor {self.sensor_name!r} failed: {tick['error']}")
        started, known = [], []
        for request in tick["run_requests"]:
            dag_id, run_id, conf, note = self._dag_run(request)
            if trigger_dag_run(dag_id, run_id, conf, note):
                self.log.info("Triggered DAG %s, run %s", dag_id, run_id)
                started.append(run_id)
            else:
                self.log.info(
                    "Run key %r was requested before (run %s): no new run, as in Dagster",
                    request["run_key"],
                    run_id,
                )
                known.append(run_id)
        if tick["cursor"] is not None and tick["cursor"] != cursor:
            Variable.set(key, tick["cursor"])
        if not tick["run_requests"]:
            raise AirflowSkipException(tick["skip_reason"] or "the sensor requested no run")
        return {"triggered": started, "already_requested": known, "cursor": tick["cursor"]}

    def _dag_run(self, request: Mapping[str, Any]) -> tuple[str, str, dict, str]:
        job = request.get("job_name") or next(iter(self.job_dags))
        if job not in self.job_dags:
            raise ConfigurationError(
                f"sensor {self.sensor_name!r} requested a run of job {job!r}, which has no DAG "
                f"in this sensor DAG's job_dags ({sorted(self.job_dags)}); scaffold again."
            )
        run_key = request.get("run_key")
        if run_key is None:  # Dagster starts such a request every time: a new id each time
            import uuid

            run_id = f"dagster_sensor__{self.sensor_name}__{uuid.uuid4().hex}"
        else:
            run_id = run_id_for(self.sensor_name, run_key)
        conf = dict(request.get("run_config") or {})
        if request.get("partition_key") is not None:
            conf["partition"] = request["partition_key"]
        tags = dict(request.get("tags") or {})
        if tags:
            conf[TAGS_KEY] = tags
        note = f"Dagster sensor {self.sensor_name!r}, run key {run_key!r}, tags {tags!r}"
        return self.job_dags[job], run_id, conf, note


def evaluate_tick(
    code_location: Mapping[str, Any], sensor_name: str, cursor: str | None, runner: Any
) -> dict[str, Any]:
    """The sensor's tick, evaluated by the Dagster side in a process of its own."""
    from dagster_airflow.runners.subprocess import step_environment

    spec = RunnerSpec.from_value(runner or "subprocess")
    options = spec.options if spec.name == "subprocess" else {}
    python = options.get("python") or sys.executable
    request = {"code_location": dict(code_location), "sensor_name": sensor_name, "cursor": cursor}
    try:
        done = subprocess.run(
            [python, "-m", "dagster_airflow", "evaluate-sensor"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            cwd=options.get("working_dir") or None,
            env=step_environment(os.environ, options.get("env") or {}, {}),
        )
    except OSError as exc:
        raise RunnerError(
            f"cannot start the sensor's Python {python!r}: {exc}; set the subprocess runner's "
            "'python' option to an interpreter with dagster-airflow[dagster]."
        ) from exc
    for line in done.stderr.splitlines():
        log.info("%s", line)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode != 0 or not lines:
        for line in done.stdout.splitlines():
            log.info("%s", line)
        raise RunnerError(
            f"the evaluation of sensor {sensor_name!r} ended with exit status {done.returncode} "
            "and no result; its output is in the log above."
        )
    return json.loads(lines[-1][len(RESULT_MARK) :])


def trigger_dag_run(dag_id: str, run_id: str, conf: dict, note: str) -> bool:
    """Trigger a DAG run as TriggerDagRunOperator does (through the task's execution API);
    False when a run of that id exists already."""
    from airflow.sdk.execution_time.comms import ErrorResponse
    from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

    from dagster_airflow.task.airflow_compat import ErrorType, trigger_dag_run_request

    reply = SUPERVISOR_COMMS.send(
        trigger_dag_run_request(
            dag_id=dag_id,
            run_id=run_id,
            logical_date=None,
            conf=conf,
            reset_dag_run=False,
            note=note,
        )
    )
    if isinstance(reply, ErrorResponse):
        if reply.error == ErrorType.DAGRUN_ALREADY_EXISTS:
            return False
        raise RunnerError(f"cannot trigger DAG {dag_id!r} (run {run_id!r}): {reply.detail}")
    return True
