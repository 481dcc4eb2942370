"""The Airflow plugin: `dagster-airflow install`, `airflow plugins`, and the links of finished
tasks, read through Airflow's own REST API from one real run of the demo.

That run also shows the example venv runner end to end: the demo is scaffolded with
``--runner venv`` (each step runs with a second virtual environment's Python), except for one task
that a stand-in for the graphql runner runs, so that its "Dagster run" link has a URL to show.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import subprocess
import sys
import urllib.parse

import pytest

from dagster_airflow.distribution import AIRFLOW_PLUGIN
from dagster_airflow.model import dagster_run_id
from dagster_airflow.storage.filesystem import FilesystemStorage
from dagster_airflow.testing import AirflowHome, create_venv
from dagster_airflow.ui.install import PLUGIN_FILE, PLUGIN_FILENAME
from tests.conftest import EXAMPLES, ROOT, run_cli, scaffold
from tests.plugin_dists import write_distribution

pytestmark = pytest.mark.airflow

DAG_ID = "plugin_demo"
DAGSTER_UI = "http://127.0.0.1:3000"  # never contacted: only written into a link

# Stands in for the graphql runner: runs the step locally and reports where Dagster's UI shows
# it, as the links contract asks (dagster_airflow.ui.links.push_dagster_run_url).
LINKED_RUNNER = f"""
    from dagster_airflow import hookimpl
    from dagster_airflow.runners.subprocess import SubprocessRunner

    class LinkedRunner(SubprocessRunner):
        name = "linked"

        def run(self, request, context):
            from dagster_airflow.ui.links import push_dagster_run_url

            push_dagster_run_url("{DAGSTER_UI}/runs/" + request.run_id)
            return super().run(request, context)

    @hookimpl
    def dagster_airflow_register_runners(register):
        register(LinkedRunner)
"""

# What Airflow's API server answers for a task's extra links, asked in-process (no socket).
API_LINKS = """
import json, sys
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app

client = TestClient(create_app())
dag_id, run_id, *task_ids = sys.argv[1:]
links = {}
for task_id in task_ids:
    url = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/links"
    response = client.get(url)
    assert response.status_code == 200, response.text
    links[task_id] = response.json()["extra_links"]
print(json.dumps(links))
"""


def default_args(dag_file_text: str) -> dict:
    """The scaffolded file's DEFAULT_ARGS literals, however long lines were wrapped."""
    for node in ast.parse(dag_file_text).body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "DEFAULT_ARGS":
            return {
                ast.literal_eval(key): ast.literal_eval(value)
                for key, value in zip(node.value.keys, node.value.values, strict=True)
                if isinstance(value, ast.Constant | ast.Dict)
            }
    raise AssertionError("the DAG file has no DEFAULT_ARGS")


@pytest.fixture(scope="module")
def demo(airflow_home, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plugin_demo")
    step_venv = create_venv(
        tmp / "steps", ["-e", f"{ROOT}[dagster]"], constraints=ROOT / "constraints.txt"
    )
    site = write_distribution(
        tmp / "site", "linked", LINKED_RUNNER, {"dagster_airflow": "linked = linked_plugin"}
    )
    home = AirflowHome(
        airflow_home.path,
        env={"PYTHONPATH": str(site), "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"},
    )
    storage_dir = tmp / "storage"
    text = scaffold(
        "demo_pipeline",
        "-f",
        str(EXAMPLES / "demo.py"),
        "-e",
        str(EXAMPLES / "demo.yml"),
        "--dag-id",
        DAG_ID,
        "--runner",
        "venv",
        "--runner-option",
        f"venv={step_venv}",
        "--storage-option",
        f"base_dir={storage_dir}",
    )
    assert default_args(text)["runner"] == {"name": "venv", "venv": str(step_venv)}
    summarize = 'DagsterOperator(task_id="summarize"'
    text = text.replace(summarize, f'{summarize}, runner={{"name": "linked"}}')
    home.install(text, f"{DAG_ID}.py")
    result = home.dags_test(DAG_ID)
    assert result.succeeded, result.output[-3000:]
    return home, result, storage_dir, step_venv


def test_the_demo_runs_end_to_end_with_the_venv_runner(demo):
    _, result, storage_dir, step_venv = demo
    assert set(result.states.values()) == {"success"} and len(result.states) == 5
    for task_id in ("multiply_the_word", "count_letters", "reverse_word", "count_reversed"):
        log = result.task_log(task_id)
        assert "runner 'venv', storage 'filesystem'" in log
        # a fresh process of the venv's Python, or a fork of the step server it runs
        assert (
            f"Starting {step_venv}/bin/python -m dagster_airflow execute-step" in log
            or "forked by step server" in log
        )
    assert (
        f"Starting {step_venv}/bin/python -m dagster_airflow execute-step" in result.output
        or f"with {step_venv}/bin/python in" in result.task_log("multiply_the_word")
    )
    assert "Letter counts: {'b': 2, 'a': 2, 'r': 2}" in result.task_log("summarize")
    run_id = dagster_run_id(DAG_ID, result.run_id)
    storage = FilesystemStorage(base_dir=str(storage_dir))
    with storage.open_read(storage.key(run_id, "count_reversed", "result")) as stream:
        assert pickle.load(stream) == {"r": 2, "a": 2, "b": 2}


def test_finished_tasks_link_to_their_outputs_event_log_and_dagster_run(demo):
    home, result, _, _ = demo
    done = subprocess.run(
        [sys.executable, "-c", API_LINKS, DAG_ID, result.run_id, "count_letters", "summarize"],
        env=home.env,
        capture_output=True,
        text=True,
        cwd=home.path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    links = json.loads(done.stdout.strip().splitlines()[-1])
    run_id = dagster_run_id(DAG_ID, result.run_id)
    # A file:// URL the UI would drop: the filesystem's links open the step view instead.
    view = f"/dagster-airflow/steps/{DAG_ID}/{urllib.parse.quote(result.run_id, safe='')}"
    assert links == {
        "count_letters": {
            "Dagster outputs": f"{view}/count_letters?map_index=-1&try_number=1",
            "Dagster event log": f"{view}/count_letters?map_index=-1&try_number=1",
            "Dagster run": None,  # the venv runner has no Dagster UI to show
        },
        "summarize": {
            "Dagster outputs": f"{view}/summarize?map_index=-1&try_number=1",
            "Dagster event log": f"{view}/summarize?map_index=-1&try_number=1",
            "Dagster run": f"{DAGSTER_UI}/runs/{run_id}",
        },
    }


# The step view's page and JSON of one task, from Airflow's api-server app in-process (every user
# is an admin in this home: SIMPLE_AUTH_MANAGER_ALL_ADMINS).
STEP_VIEW = """
import json, sys
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app

client = TestClient(create_app())
dag_id, run_id, task_id = sys.argv[1:]
html = client.get(f"/dagster-airflow/steps/{dag_id}/{run_id}/{task_id}")
data = client.get(f"/dagster-airflow/api/steps/{dag_id}/{run_id}/{task_id}")
assert html.status_code == 200 and data.status_code == 200, (html.text, data.text)
print(json.dumps({"html": html.text, "json": data.json()}))
"""


def test_the_step_view_links_to_the_dagster_run_a_runner_reported(demo):
    home, result, _, _ = demo
    done = subprocess.run(
        [sys.executable, "-c", STEP_VIEW, DAG_ID, result.run_id, "summarize"],
        env=home.env,
        capture_output=True,
        text=True,
        cwd=home.path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    page = json.loads(done.stdout.strip().splitlines()[-1])
    url = f"{DAGSTER_UI}/runs/{dagster_run_id(DAG_ID, result.run_id)}"
    assert page["json"]["dagster_run_url"] == url
    assert f'<a data-testid="dagster-run-link" href="{url}">' in page["html"]
    assert (
        page["json"]["outputs"][0]["preview"]
        == "{'letters': {'a': 2, 'b': 2, 'r': 2}, 'total': 6}"  # reprlib sorts keys
    )


def test_airflow_lists_the_plugin(demo):
    home = demo[0]
    done = home.airflow("plugins", "--output", "json")
    assert done.returncode == 0, done.stderr
    (plugin,) = [p for p in json.loads(done.stdout) if p["name"] == AIRFLOW_PLUGIN]
    assert (
        "dagster-on-airflow==" in plugin["source"]
    )  # found through the airflow.plugins entry point
    assert [link.split(".")[-1].split()[0] for link in plugin["operator_extra_links"]] == [
        "StepOutputsLink",
        "StepEventLogLink",
        "DagsterRunLink",
    ]
    assert [app["url_prefix"] for app in plugin["fastapi_apps"]] == ["/dagster-airflow"]
    # The scheduler reads a Dagster schedule's timetable back only through this registration.
    assert plugin["timetables"] == ["dagster_airflow.ui.timetable.DagsterCronTimetable"]
    # The scheduler imports what the tasks need before it forks them (ui/listener.py).
    assert plugin["listeners"] == ["dagster_airflow.ui.listener"]
    (view,) = plugin["external_views"]
    assert (view["name"], view["destination"], view["href"]) == (
        "Dagster step",
        "task_instance",
        "/dagster-airflow/steps/{DAG_ID}/{RUN_ID}/{TASK_ID}?map_index={MAP_INDEX}",
    )


def test_install_writes_the_plugin_into_the_plugins_folder_once(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    env.pop("AIRFLOW__CORE__PLUGINS_FOLDER", None)
    target = tmp_path / "plugins" / PLUGIN_FILENAME

    first = run_cli("install", env=env)
    again = run_cli("install", env=env)
    target.write_text("# an older version\n")
    update = run_cli("install", env=env)

    assert first.stdout == f"Installed the dagster-airflow Airflow plugin at {target}.\n"
    assert again.stdout == (
        f"The dagster-airflow Airflow plugin at {target} is up to date; nothing to do.\n"
    )
    assert update.stdout == f"Updated the dagster-airflow Airflow plugin at {target}.\n"
    assert target.read_text() == PLUGIN_FILE
    assert [p.name for p in target.parent.iterdir()] == [PLUGIN_FILENAME]  # no temporary left


def test_install_finds_the_plugins_folder_as_airflow_does(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    env.pop("AIRFLOW__CORE__PLUGINS_FOLDER", None)
    (tmp_path / "airflow.cfg").write_text("[core]\nplugins_folder = {AIRFLOW_HOME}/from_cfg\n")
    assert run_cli("install", env=env).returncode == 0
    assert (tmp_path / "from_cfg" / PLUGIN_FILENAME).is_file()

    env["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(tmp_path / "from_env")
    assert run_cli("install", env=env).returncode == 0
    assert (tmp_path / "from_env" / PLUGIN_FILENAME).is_file()

    assert run_cli("install", "--plugins-folder", str(tmp_path / "given"), env=env).returncode == 0
    assert (tmp_path / "given" / PLUGIN_FILENAME).is_file()


def test_an_unwritable_plugins_folder_is_one_sentence(tmp_path):
    (tmp_path / "file").write_text("")
    done = run_cli("install", "--plugins-folder", str(tmp_path / "file" / "plugins"))
    assert done.returncode == 2
    assert done.stderr.startswith("dagster-airflow install: cannot write the Airflow plugin into")
    assert "pass --plugins-folder or set AIRFLOW__CORE__PLUGINS_FOLDER" in done.stderr


def test_airflow_loads_the_installed_file_without_a_duplicate(tmp_path):
    home = AirflowHome(tmp_path, env={"AIRFLOW__CORE__PLUGINS_FOLDER": str(tmp_path / "plugins")})
    assert run_cli("install", env=home.env).returncode == 0
    report = (
        "import json\n"
        "from airflow import plugins_manager as pm\n"
        "print(json.dumps([[p['name'] for p in pm.get_plugin_info()], pm.get_import_errors()]))\n"
    )
    # Not from the repository's root, whose dagster_airflow.egg-info would be a second copy of
    # the distribution (and of its entry point) on sys.path.
    done = subprocess.run(
        [sys.executable, "-c", report], env=home.env, capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    names, errors = json.loads(done.stdout.strip().splitlines()[-1])
    assert names.count(AIRFLOW_PLUGIN) == 1
    assert errors == {}
