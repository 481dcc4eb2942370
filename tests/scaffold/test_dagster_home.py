"""scaffold --dagster-home / --dagster-ui-url: the DAG file names the team's Dagster instance
through checked literals, adds the task that ends the run, and its docs say which instance."""

from __future__ import annotations

import runpy

import pytest

from tests.conftest import EXAMPLES, run_cli, scaffold

DEMO = ["demo_pipeline", "-f", str(EXAMPLES / "demo.py"), "-e", str(EXAMPLES / "demo.yml")]
HOME = "/opt/dagster/home"
UI = "https://dagster.example.com"


def test_the_setting_lands_in_default_args_with_an_end_task_and_docs_that_say_so(tmp_path):
    text = scaffold(*DEMO, "--dagster-home", HOME, "--dagster-ui-url", UI)
    path = tmp_path / "demo_dag.py"
    path.write_text(text)
    dag = runpy.run_path(str(path))["dag"]
    assert dag.default_args["dagster_home"] == HOME
    assert dag.default_args["dagster_ui_url"] == UI
    end = dag.get_task("dagster_run_end")
    assert end.is_teardown and end.ends_dagster_run
    # After every other task, whatever their states; every step's task has the instance.
    steps = [t for t in dag.tasks if t is not end]
    leaves = {t.task_id for t in steps if t.downstream_task_ids == {end.task_id}}
    assert leaves and end.upstream_task_ids == leaves
    assert {t.dagster_home for t in dag.tasks} == {HOME}
    assert f"one Dagster run in the instance of the Dagster home `{HOME}`" in dag.doc_md
    assert f"shown at {UI}" in dag.doc_md
    # The end task is no step: the file still matches the job.
    done = run_cli("check", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_without_the_setting_steps_run_against_an_ephemeral_instance_and_the_docs_say_so(
    tmp_path,
):
    text = scaffold(*DEMO)
    assert "dagster_home" not in text and "dagster_run_end" not in text
    assert "Each step runs against an ephemeral Dagster instance" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--dagster-home", "dagster/home"],
            "--dagster-home 'dagster/home' is not an absolute path; give the Dagster home "
            "folder as each step sees it, such as /opt/dagster/home.",
        ),
        (
            ["--dagster-home", HOME, "--dagster-ui-url", "dagster.example.com"],
            "--dagster-ui-url 'dagster.example.com' is not an http(s) URL; give the address of "
            "the team's Dagster UI, such as https://dagster.example.com.",
        ),
        (
            ["--dagster-ui-url", UI],
            f"--dagster-ui-url {UI!r} needs --dagster-home: without the team's instance no run "
            "reaches that UI; give both, or leave the URL out.",
        ),
    ],
)
def test_a_bad_setting_is_one_sentence_and_writes_nothing(args, message, tmp_path):
    done = run_cli("scaffold", *DEMO, *args, "--install", "--dags-folder", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().endswith(message), done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())
