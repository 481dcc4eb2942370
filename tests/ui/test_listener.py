"""The plugin's listener: an Airflow job imports what DagsterOperator tasks need before it forks
them; a task's own process, and a failure, change nothing. Each case in a fresh process, as
Airflow's components are (what a process imported is the thing checked). The scheduler of a real
deployment is checked in tests/e2e/test_deployment_local.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
