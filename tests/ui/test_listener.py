"""The plugin's listener: an Airflow job imports what DagsterOperator tasks need before it forks
them; a task's own process, and a failure, change nothing. Each case in a fresh process, as
Airflow's components are (what a process imported is the thing checked). The scheduler of a real
deployment is checked in tests/e2e/test_deployment_local.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from dagster_airflow.model import CodeLocation, StepRequest
from tests.plugin_dists import write_distribution

# What a task imports when it runs a step with the default runner and storage.
TASK_MODULES = {
    "dagster_airflow.task.step_request",
    "dagster_airflow.task.step_end",
    "dagster_airflow.task.deferral",
    "dagster_airflow.runners.subprocess",
    "dagster_airflow.storage.filesystem",
}

CALL = """
import json, logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
from dagster_airflow.ui.listener import on_starting

class {component}:
    pass

on_starting({component}())
from dagster_airflow.plugins.manager import get_plugins
print(json.dumps({{
    "modules": sorted(m for m in sys.modules if m.startswith("dagster_airflow.")),
    "plugins_built": get_plugins.cache_info().currsize,
    "dagster": "dagster" in sys.modules,
}}))
"""


def call(component: str, site: str | None = None) -> tuple[dict, str]:
    env = dict(os.environ)
    if site:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (site, env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-c", CALL.format(component=component)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    # Airflow's logging, once configured, writes to standard output: the JSON is the last line.
    *logged, last = done.stdout.strip().splitlines()
    return json.loads(last), "\n".join([*logged, *done.stderr.strip().splitlines()])


def test_an_airflow_job_imports_the_task_modules_and_builds_the_plugins():
    found, logged = call("Job")

    assert logged == ""
    assert set(found["modules"]) >= TASK_MODULES
    assert found["plugins_built"] == 1  # the entry points scanned once, for every task forked
    assert found["dagster"] is False  # the Airflow side only


def test_a_task_process_imports_nothing_ahead():
    found, logged = call("TaskRunnerMarker")

    assert logged == ""
    assert not TASK_MODULES & set(found["modules"])
    assert found["plugins_built"] == 0


def test_a_failure_is_one_line_and_the_job_goes_on(tmp_path):
    # A third-party backend whose module fails to import, as the preload meets it.
    site = write_distribution(
        tmp_path, "broken", "import missing_client\n", {"dagster_airflow": "broken = broken_plugin"}
    )
    found, stderr = call("Job", str(site))

    (line,) = stderr.splitlines()
    assert (
        "dagster-airflow could not import its task modules ahead of the tasks, so each task "
        "imports them itself: PluginError: the dagster_airflow plugin 'broken' (broken-plugin "
        "1.0) failed to load: ModuleNotFoundError: No module named 'missing_client'; fix or "
        "uninstall it (`dagster-airflow plugins` lists every plugin and its error)."
    ) in line
    assert found["plugins_built"] == 0  # each task loads the plugins, and reports the error


# A deferred task a user marked failed or succeeded: which trigger the api-server's listener
# leaves to its triggerer and which it stops itself (the whole flow, with a container, is
# tests/e2e/test_deferral_deployment.py). Against a real migrated Airflow database.
UNHELD = """
import datetime, json
from airflow.jobs.job import Job
from airflow.models.trigger import Trigger
from airflow.utils import timezone
from airflow.utils.session import create_session
from airflow.utils.state import JobState
from dagster_airflow.task.unheld_trigger import _unheld_trigger_kwargs

ours = "dagster_airflow.task.trigger.RemoteStepTrigger"
kwargs = {"runner": {"name": "docker"}, "request": "{}", "run": {"handle": "c1"}, "deadline": None}
with create_session() as session:
    alive = Job(job_type="TriggererJob")
    alive.state, alive.latest_heartbeat = JobState.RUNNING, timezone.utcnow()
    gone = Job(job_type="TriggererJob")
    gone.state = JobState.RUNNING
    gone.latest_heartbeat = timezone.utcnow() - datetime.timedelta(hours=1)
    session.add_all([alive, gone])
    session.flush()
    triggers = {
        "unassigned": Trigger(ours, kwargs),
        "held": Trigger(ours, kwargs),
        "held by a dead triggerer": Trigger(ours, kwargs),
        "another's": Trigger("airflow.triggers.temporal.DateTimeTrigger", kwargs),
    }
    triggers["held"].triggerer_id = alive.id
    triggers["held by a dead triggerer"].triggerer_id = gone.id
    session.add_all(triggers.values())
    session.flush()
    ids = {name: trigger.id for name, trigger in triggers.items()}
print(json.dumps({name: _unheld_trigger_kwargs(id_) for name, id_ in ids.items()}))
"""


def test_the_listener_stops_only_the_runs_no_live_triggerer_follows(airflow_home):
    done = subprocess.run(
        [sys.executable, "-c", UNHELD],
        capture_output=True,
        text=True,
        check=True,
        env=airflow_home.env,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])

    kwargs = {"runner": {"name": "docker"}, "request": "{}", "run": {"handle": "c1"}}
    kwargs["deadline"] = None
    assert found == {
        "unassigned": kwargs,  # no triggerer has picked it up: nothing calls its on_kill
        "held": None,  # its triggerer calls on_kill
        "held by a dead triggerer": kwargs,
        "another's": None,
    }


def test_a_task_that_ends_imports_nothing_for_it():
    # Every task's own process calls the hook as it ends, with an instance that has no trigger.
    script = (
        "import sys\n"
        "from dagster_airflow.ui.listener import on_task_instance_failed, "
        "on_task_instance_success\n"
        "class RuntimeTaskInstance:\n"
        "    task_id = 'a'\n"
        "on_task_instance_failed(RuntimeTaskInstance())\n"
        "on_task_instance_success(RuntimeTaskInstance())\n"
        "print('dagster_airflow.task.unheld_trigger' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)

    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "False", "")


def test_a_run_that_cannot_be_stopped_is_one_line_that_names_it(caplog):
    from dagster_airflow.task.unheld_trigger import _stop

    kwargs = {"runner": {"name": "no_such_runner"}, "request": "{}"}
    kwargs["run"] = {"handle": {"container_id": "c0ffee"}, "started_at": 0.0}
    _stop(kwargs)

    (record,) = [r for r in caplog.records if r.name == "dagster_airflow.task.unheld_trigger"]
    assert record.getMessage().startswith(
        "dagster-airflow could not stop the run {'container_id': 'c0ffee'} of a deferred task a "
        "user ended, which no triggerer was following; stop it by hand: "
    ), record.getMessage()
    assert "no_such_runner" in record.getMessage()


# The whole function, with a real database: a task instance deferred on an unheld trigger of
# ours, whose runner cannot be built (so nothing outside is stopped, and the line says so).
STOP = """
import json, logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
from airflow.models.trigger import Trigger
from airflow.utils.session import create_session
from dagster_airflow.task.unheld_trigger import stop_if_unheld

kwargs = {"runner": {"name": "no_such_runner"}, "request": "{}"}
kwargs["run"] = {"handle": {"container_id": "c0ffee"}, "started_at": 0.0}
with create_session() as session:
    trigger = Trigger("dagster_airflow.task.trigger.RemoteStepTrigger", kwargs)
    session.add(trigger)
    session.flush()
    trigger_id = trigger.id

class TaskInstance:
    task_id, run_id = "sleepy", "manual"

ti = TaskInstance()
ti.trigger_id = trigger_id
thread = stop_if_unheld(ti)
if thread is not None:
    thread.join(60)
print(json.dumps(thread is not None))
"""


def stop_in_a_deployment(home, **env: str) -> tuple[bool, str]:
    done = subprocess.run(
        [sys.executable, "-c", STOP],
        capture_output=True,
        text=True,
        check=True,
        env={**home.env, **env},
    )
    # Airflow's logging, once configured, writes to standard output: the JSON is the last line.
    *logged, last = done.stdout.strip().splitlines()
    return json.loads(last), "\n".join([*logged, done.stderr])


def test_an_unheld_trigger_is_stopped_unless_the_deployment_turned_it_off(airflow_home):
    stopped, logged = stop_in_a_deployment(airflow_home)
    assert stopped
    assert "could not stop the run {'container_id': 'c0ffee'}" in logged, logged

    stopped, logged = stop_in_a_deployment(
        airflow_home, AIRFLOW__DAGSTER_AIRFLOW__STOP_UNHELD_RUNS="False"
    )
    assert not stopped
    assert "c0ffee" not in logged, logged


# A hostile value: a third-party runner whose stop fails with an error that quotes the
# password of the Airflow connection it read. The api-server's line must not show it.
LEAKY_RUNNER = """
from dagster_airflow import hookimpl
from dagster_airflow.errors import RunnerError
from dagster_airflow.runners.lifecycle import RemoteRunner


class LeakyRunner(RemoteRunner):
    name = "leaky"

    def __init__(self, **options):
        pass

    def find(self, request, context):
        return None

    def start(self, request, context):
        raise NotImplementedError

    def read_output(self, handle, wait, final=False):
        return []

    def state(self, handle):
        raise NotImplementedError

    def stop(self, handle, reason):
        raise NotImplementedError

    def handle_from_data(self, data, request, context):
        secret = context.connection("leaky_platform").password
        raise RunnerError(f"the platform refused the password {secret!r}")


@hookimpl
def dagster_airflow_register_runners(register):
    register(LeakyRunner)
"""


def test_a_failed_stop_never_shows_the_connections_secret(airflow_home, tmp_path):
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    site = write_distribution(
        tmp_path, "leaky", LEAKY_RUNNER, {"dagster_airflow": "leaky = leaky_plugin"}
    )
    request = StepRequest(
        code_location=CodeLocation(python_file="/nowhere/jobs.py"),
        job_name="job",
        step_key="step",
        run_id=str(uuid.uuid4()),
    )
    kwargs = {"runner": {"name": "leaky"}, "request": request.to_json()}
    kwargs["run"] = {"handle": "run-1", "started_at": 0.0}
    script = (
        "import json, logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stderr, format='%(message)s')\n"
        "from dagster_airflow.task.unheld_trigger import _stop\n"
        f"_stop(json.loads({json.dumps(json.dumps(kwargs))}))\n"
    )
    connection = json.dumps({"conn_type": "generic", "password": secret})
    env = {**airflow_home.env, "AIRFLOW_CONN_LEAKY_PLATFORM": connection}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    logged = done.stdout + done.stderr

    assert "could not stop the run run-1 of a deferred task a user ended" in logged, logged
    assert "the platform refused the password" in logged, logged
    assert secret not in logged
