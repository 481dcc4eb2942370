"""The DAG file is data: what an attacker puts into any field the scaffold writes stays a value.

Each test scaffolds through the real CLI, then imports the DAG file in this process as Airflow's
DAG processor would (airflow.sdk), and checks that nothing ran and every value came back as given.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
from pathlib import Path

import pytest
import yaml

from dagster_airflow.errors import ConfigurationError
from dagster_airflow.job.params import param_default
from tests.conftest import EXAMPLES, JOBS, run_cli
from tests.jobs.hostile import HOSTILE, LONG, PAYLOAD, SHORT, WORD

HOSTILE_FILE = str(JOBS / "hostile.py")
# What a file system and an environment can carry: the hostile string without its NUL.
NO_NUL = HOSTILE.replace("\x00", "")


def scaffolded(tmp_path: Path, *args: str, cwd: Path = JOBS) -> tuple[object, str]:
    """The DAG file the scaffold prints, imported here; and the command line it was given."""
    done = run_cli("scaffold", *args, cwd=cwd)
    assert done.returncode == 0, done.stderr
    path = tmp_path / f"dag_{len(list(tmp_path.iterdir()))}.py"
    path.write_text(done.stdout)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, "dagster-airflow scaffold " + shlex.join(args)


@pytest.fixture(autouse=True)
def nothing_ran():
    os.environ.pop("PWNED", None)
    yield
    assert "PWNED" not in os.environ, "a value of the DAG file ran as code"


def test_hostile_strings_in_every_field_come_back_as_the_values_given(tmp_path):
    run_config = {
        "ops": {"first": {"config": {HOSTILE: HOSTILE, "list": [HOSTILE, 1.5, None, True]}}}
    }
    config_file = tmp_path / "run_config.yml"
    config_file.write_text(yaml.safe_dump(run_config))
    base_dir = str(tmp_path / NO_NUL.replace("/", "_"))
    args = ["hostile_job", "-f", HOSTILE_FILE, "-e", str(config_file), "--dag-id", "données.v1-x"]
    # JSON is YAML: each option's value is read back as exactly this string.
    args += ["--runner-option", f"env={{A: {json.dumps(NO_NUL)}}}"]
    args += ["--runner-option", f"python={json.dumps(HOSTILE)}"]
    args += ["--storage-option", f"base_dir={json.dumps(base_dir)}"]
    args += ["--env", f"HOSTILE_SETTING={NO_NUL}"]  # a variable's value, as typed

    module, command = scaffolded(tmp_path, *args)

    assert command == module.SCAFFOLD_COMMAND
    assert run_config == module.RUN_CONFIG
    assert module.DEFAULT_ARGS["runner"] == {
        "name": "subprocess",
        "env": {"A": NO_NUL},
        "python": HOSTILE,
    }
    assert module.DEFAULT_ARGS["storage"] == {"name": "filesystem", "base_dir": base_dir}
    assert module.ENVIRONMENT == {"HOSTILE_SETTING": NO_NUL}
    assert module.DEFAULT_ARGS["environment"] is module.ENVIRONMENT
    assert module.PARAMS["ops"].value == param_default(run_config["ops"])
    dag = module.dag
    assert dag.dag_id == "données.v1-x"
    assert dag.description == HOSTILE.splitlines()[0]
    assert f"Regenerate this file: `{command}`" in dag.doc_md
    assert "Each Airflow task runs one Dagster execution step" in module.__doc__
    assert sorted(dag.task_dict) == ["first"]


def test_a_hostile_asset_key_and_uri_template_stay_values(tmp_path):
    template = 'x://lake/{key}/""",__import__("os").environ.__setitem__("PWNED", "1"),"""\n#'
    module, _ = scaffolded(tmp_path, "hostile_assets", "-f", HOSTILE_FILE, "--asset-uri", template)

    key = f"hostile/{HOSTILE}"
    assert template == module.ASSET_URI_TEMPLATE
    assert list(module.ASSETS) == [key]
    assert module.ASSETS[key].name == key
    (task,) = module.dag.task_dict.values()
    assert [asset.name for asset in task.outlets] == [key]


def test_hostile_tags_pool_schedule_and_team_instance_settings_stay_values(tmp_path):
    dagster_home = str(tmp_path / NO_NUL.replace("/", "_"))
    ui_url = f"https://dagster.example/{PAYLOAD}".replace(" ", "")
    args = ["hostile_tags", "-f", HOSTILE_FILE, "--dagster-home", dagster_home]
    module, command = scaffolded(tmp_path, *args, "--dagster-ui-url", ui_url)

    assert command == module.SCAFFOLD_COMMAND
    # The schedule's run config, its tags and the job's tags, as Dagster holds them.
    assert module.RUN_CONFIG == {"ops": {"pooled": {"config": {HOSTILE: HOSTILE}}}}
    assert module.DEFAULT_ARGS["run_tags"] == {
        "source": SHORT,
        "dagster/schedule_name": "hostile_schedule",
    }
    assert module.DEFAULT_ARGS["dagster_home"] == dagster_home
    assert module.DEFAULT_ARGS["dagster_ui_url"] == ui_url
    dag = module.dag
    assert f"team:{SHORT}" in dag.tags and f"source:{SHORT}" in dag.tags
    assert dag.task_dict["pooled"].pool == WORD
    assert f"Regenerate this file: `{command}`" in dag.doc_md


def test_step_keys_cut_to_the_same_250_characters_stay_two_tasks_with_stable_ids(tmp_path):
    first, _ = scaffolded(tmp_path, "long_keys", "-f", HOSTILE_FILE)
    again, _ = scaffolded(tmp_path, "long_keys", "-f", HOSTILE_FILE)

    tasks = first.dag.task_dict
    assert len(tasks) == 2
    assert sorted(t.step_key for t in tasks.values()) == [LONG + "_a", LONG + "_b"]
    assert all(len(task_id) == 250 and task_id.startswith("x" * 241) for task_id in tasks)
    assert sorted(again.dag.task_dict) == sorted(tasks)
    (edge,) = [(u, t.task_id) for t in tasks.values() for u in t.upstream_task_ids]
    assert tasks[edge[0]].step_key == LONG + "_a"


def test_a_file_name_that_is_not_utf8_is_written_as_the_name_it_is(tmp_path):
    name = os.fsdecode(b"caf\xe9.yml")  # the bytes of a Latin-1 file name
    (tmp_path / name).write_bytes((EXAMPLES / "demo.yml").read_bytes())
    demo = ["demo_pipeline", "-f", str(EXAMPLES / "demo.py")]

    module, command = scaffolded(tmp_path, *demo, "-e", name, cwd=tmp_path)

    assert command == module.SCAFFOLD_COMMAND
    assert name in command


def test_what_a_module_prints_at_import_never_reaches_the_dag_text(tmp_path):
    module = tmp_path / "chatty.py"
    module.write_text(
        "import os\nprint('CHATTY print')\nos.write(1, b'CHATTY fd\\n')\n"
        "import dagster as dg\n\n@dg.op\ndef a():\n    return 1\n\n"
        "@dg.job\ndef chatty():\n    a()\n"
    )
    done = run_cli("scaffold", "chatty", "-f", str(module))

    assert done.returncode == 0, done.stderr
    assert "CHATTY" not in done.stdout
    assert "CHATTY print" in done.stderr and "CHATTY fd" in done.stderr
    compile(done.stdout, "chatty_dag.py", "exec")


def test_a_number_no_dag_file_can_hold_is_refused_naming_where_it_is(tmp_path):
    config_file = tmp_path / "run_config.yml"
    config_file.write_text("ops:\n  first:\n    config:\n      limit: .inf\n")
    done = run_cli("scaffold", "hostile_job", "-f", HOSTILE_FILE, "-e", str(config_file))

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "dagster-airflow scaffold: the number inf at ops.first.config.limit of the run config "
        "cannot be written into a DAG file (Airflow keeps its default args and params as JSON, "
        "which has no infinity or NaN); use a finite number, or a string that the op converts.\n"
    )


def test_the_check_before_writing_refuses_a_text_that_does_not_evaluate_back():
    from dagster_airflow.scaffold.dag_check import check_dag_text

    text = (
        '"""Doc."""\nDEFAULT_ARGS = {"run_config": {"a": "x" "y"}}\n'
        't = Op(task_id="t", step_key="s")\n'
    )
    meant = {("DEFAULT_ARGS", "run_config"): {"a": "xy"}}
    check_dag_text(text, "job", meant, {"t": "s"}, "Doc.")
    for changed in (
        ({("DEFAULT_ARGS", "run_config"): {"a": "x"}}, {"t": "s"}, "Doc."),
        (meant, {"t": "s", "u": "s2"}, "Doc."),
        (meant, {"t": "s"}, "Another doc."),
    ):
        with pytest.raises(ConfigurationError, match="would not hold what was meant"):
            check_dag_text(text, "job", *changed)
    with pytest.raises(ConfigurationError, match="SyntaxError"):
        check_dag_text(text + "DEFAULT_ARGS = {\n", "job", meant, {"t": "s"}, "Doc.")
