"""`dagster-airflow scaffold`: the DAG file it writes, and each bad input it refuses."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import EXAMPLES, JOBS, ROOT, run_cli, scaffold

DEMO = ["demo_pipeline", "-f", str(EXAMPLES / "demo.py"), "-e", str(EXAMPLES / "demo.yml")]

# Imports a DAG file the way Airflow's DAG processor does and reports its tasks, edges and what
# the import pulled in.
INSPECT_DAG = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("scaffolded_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
dag = module.dag
print(json.dumps({
    "dag_id": dag.dag_id,
    "edges": sorted([u, d] for d, t in dag.task_dict.items() for u in t.upstream_task_ids),
    "tasks": sorted(dag.task_dict),
    "dagster_modules": sorted(m for m in sys.modules if m == "dagster" or m.startswith("dagster.")),
    "runner": getattr(dag.task_dict[sorted(dag.task_dict)[0]], "runner", None),
    "storage": getattr(dag.task_dict[sorted(dag.task_dict)[0]], "storage", None),
}))
"""


def inspect_dag(path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", INSPECT_DAG, str(path)], capture_output=True, text=True, cwd="/"
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_scaffolded_demo_has_one_task_per_step_and_the_plans_edges(tmp_path):
    text = scaffold(*DEMO)
    compile(text, "demo_dag.py", "exec")
    path = tmp_path / "demo_dag.py"
    path.write_text(text)

    dag = inspect_dag(path)

    assert dag["dag_id"] == "demo_pipeline"
    assert dag["tasks"] == [
        "count_letters",
        "count_reversed",
        "multiply_the_word",
        "reverse_word",
        "summarize",
    ]
    assert dag["edges"] == [
        ["count_letters", "summarize"],
        ["count_reversed", "summarize"],
        ["multiply_the_word", "count_letters"],
        ["multiply_the_word", "reverse_word"],
        ["reverse_word", "count_reversed"],
    ]
    # Parsing the DAG imports no Dagster: only airflow.sdk and dagster_airflow.operator.
    assert dag["dagster_modules"] == []
    assert dag["runner"] == {"name": "subprocess"}
    assert dag["storage"]["name"] == "filesystem"
    assert "from airflow.sdk import DAG" in text
    assert "from dagster_airflow import DagsterOperator" in text


def test_runner_and_storage_options_land_in_default_args(tmp_path):
    text = scaffold(
        *DEMO,
        "--runner-option",
        "kill_timeout=3",
        "--runner-option",
        "env={GREETING: hello}",
        "--storage-option",
        f"base_dir={tmp_path}",
        "--dag-id",
        "custom_id",
    )
    path = tmp_path / "dag.py"
    path.write_text(text)
    dag = inspect_dag(path)
    assert dag["dag_id"] == "custom_id"
    assert dag["runner"] == {"name": "subprocess", "kill_timeout": 3, "env": {"GREETING": "hello"}}
    assert dag["storage"] == {"name": "filesystem", "base_dir": str(tmp_path)}


def test_run_config_files_merge_later_winning(tmp_path):
    override = tmp_path / "override.yml"
    override.write_text("ops:\n  multiply_the_word:\n    config:\n      factor: 3\n")
    text = scaffold(*DEMO, "-e", str(override))
    assert '"config": {"factor": 3}' in text
    assert '"inputs": {"word": "bar"}' in text


def test_module_and_workspace_code_locations(tmp_path):
    by_module = scaffold("numbers", "-m", "tests.jobs.pkg.jobs", "-d", str(ROOT))
    assert '"module_name": "tests.jobs.pkg.jobs"' in by_module
    assert "double >> [count, total]" in by_module

    done = run_cli(
        "scaffold",
        "numbers",
        "-w",
        str(JOBS / "workspace.yaml"),
        "--install",
        "--dags-folder",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    written = tmp_path / "numbers_location_numbers.py"
    assert written.exists()
    assert f"Wrote DAG 'numbers' (4 tasks) to {written}" in done.stdout
    assert inspect_dag(written)["tasks"] == ["count", "double", "extract", "total"]


def test_install_writes_to_airflow_home_dags_by_default(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path / "home")}
    done = run_cli("scaffold", *DEMO, "--install", env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "home" / "dags" / "demo_demo_pipeline.py").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["demo_pipeline", "-f", str(EXAMPLES / "demo.py")],
            "the run config for job 'demo_pipeline' is invalid: Missing required config entry "
            '"ops" at the root.',
        ),
        (
            ["no_such_job", "-f", str(EXAMPLES / "demo.py"), "-e", str(EXAMPLES / "demo.yml")],
            "job 'no_such_job' is not in file",
        ),
        (
            ["job", "-f", str(JOBS / "broken.py")],
            "could not load the code location file",
        ),
        (
            ["demo_pipeline", "-f", "nowhere.py"],
            "code location file 'nowhere.py' does not exist; check the -f path.",
        ),
        (
            [*DEMO, "-e", "missing.yml"],
            "cannot read run config file 'missing.yml': No such file or directory",
        ),
        (
            [*DEMO, "--runner", "kubernetes"],
            "runner 'kubernetes' is not available (plugin may not be installed?); "
            "installed runners:",
        ),
        (
            [*DEMO, "--runner-option", "pyhton=/usr/bin/python3"],
            "runner 'subprocess' has no option 'pyhton' (value '/usr/bin/python3'); its options "
            "are: env, kill_timeout, python, working_dir.",
        ),
        (
            [*DEMO, "--storage-option", "base_dir"],
            "--storage-option 'base_dir' is not KEY=VALUE",
        ),
    ],
    ids=[
        "invalid-run-config",
        "unknown-job",
        "import-error",
        "missing-file",
        "missing-config-file",
        "unknown-runner",
        "misspelled-option",
        "option-not-key-value",
    ],
)
def test_bad_input_is_one_clear_sentence_and_writes_nothing(args, message, tmp_path):
    done = run_cli("scaffold", *args, "--install", "--dags-folder", str(tmp_path))
    assert done.returncode == 2
    assert done.stdout == ""
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_import_error_names_the_missing_module(tmp_path):
    done = run_cli("scaffold", "job", "-f", str(JOBS / "broken.py"))
    assert "ModuleNotFoundError: No module named 'this_module_does_not_exist'" in done.stderr


def test_invalid_run_config_names_the_bad_value(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("ops:\n  multiply_the_word:\n    config:\n      factor: two\n")
    done = run_cli("scaffold", *DEMO, "-e", str(bad))
    assert done.returncode == 2
    assert "Invalid scalar" in done.stderr and '"two"' in done.stderr
    assert f"fix it in {EXAMPLES / 'demo.yml'} + {bad}" in done.stderr


# How Airflow sees each task of a scaffolded DAG with dynamic outputs: mapped or not, over which
# task's XCom, in which mapped task group, with which trigger rule.
INSPECT_MAPPING = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("scaffolded_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
dag = module.dag
tasks = {}
for task_id, task in dag.task_dict.items():
    group = task.get_closest_mapped_task_group()
    expand = group._expand_input if group else getattr(task, "expand_input", None)
    sources = sorted(op.task_id for op, _ in expand.iter_references()) if expand else []
    tasks[task_id] = {
        "mapped": task.is_mapped or group is not None,
        "over": sources,
        "group": group.group_id if group else None,
        "trigger_rule": str(getattr(task.trigger_rule, "value", task.trigger_rule)),
        "upstream": sorted(task.upstream_task_ids),
        "step_key": task.partial_kwargs.get("step_key") if task.is_mapped else task.step_key,
        "map_index_template": task.map_index_template,
        "mapping_keys_of": (
            task.partial_kwargs if task.is_mapped else vars(task)
        ).get("mapping_keys_of"),
    }
print(json.dumps({
    "tasks": tasks,
    "dagster_modules": sorted(m for m in sys.modules if m == "dagster" or m.startswith("dagster.")),
}))
"""


def test_dynamic_outputs_scaffold_mapped_tasks_over_the_keys_their_step_returns(tmp_path):
    config = tmp_path / "run_config.yml"
    config.write_text("ops:\n  flaky_upper:\n    config:\n      marker_dir: /tmp\n")
    text = scaffold("dynamic", "-f", str(JOBS / "dynamic.py"), "-e", str(config))
    path = tmp_path / "dynamic_dag.py"
    path.write_text(text)
    done = subprocess.run(
        [sys.executable, "-c", INSPECT_MAPPING, str(path)], capture_output=True, text=True, cwd="/"
    )
    assert done.returncode == 0, done.stderr
    dag = json.loads(done.stdout.strip().splitlines()[-1])
    tasks = dag["tasks"]

    assert dag["dagster_modules"] == []
    # The step that yields DynamicOutputs returns their mapping keys for the mapped tasks.
    assert tasks["pieces"]["mapping_keys_of"] == "result"
    assert tasks["pieces"]["mapped"] is False
    # A chain of maps over a graph: one mapped task group, so each mapping key's task instances
    # depend on each other only; task ids are the step keys without [?].
    for task_id in ("flaky_upper", "decorate.exclaim", "decorate.double"):
        assert tasks[task_id]["mapped"] is True
        assert tasks[task_id]["over"] == ["pieces"]
        assert tasks[task_id]["group"] == "pieces-result"
        assert tasks[task_id]["step_key"] == f"{task_id}[?]"
        assert tasks[task_id]["map_index_template"] == "{{ task.mapping_key }}"
    # (Each also depends on the task whose keys it maps over, as Airflow wires a mapped group.)
    assert tasks["decorate.double"]["upstream"] == ["decorate.exclaim", "pieces"]
    assert tasks["decorate.exclaim"]["upstream"] == ["flaky_upper", "pieces"]
    assert tasks["flaky_upper"]["upstream"] == ["pieces"]
    # A single map is a plain mapped task: DagsterOperator.partial(...).expand(...).
    assert tasks["square"] | {"upstream": None} == {
        "mapped": True,
        "over": ["numbers"],
        "group": None,
        "trigger_rule": "all_success",
        "upstream": None,
        "step_key": "square[?]",
        "map_index_template": "{{ task.mapping_key }}",
        "mapping_keys_of": None,
    }
    assert "DagsterOperator.partial(" in text and ".expand(mapping_key=numbers.output)" in text
    # A collect is a fan-in task: it runs when no upstream failed, so zero keys (its mapped
    # upstream skipped) still give it [] as in Dagster.
    for task_id in ("join", "total", "join_none", "join_maybe"):
        assert tasks[task_id]["mapped"] is False
        assert tasks[task_id]["trigger_rule"] == "none_failed"
    assert tasks["join"]["upstream"] == ["decorate.double"]
    assert tasks["join_none"]["upstream"] == ["double_none"]


def test_a_list_fan_in_runs_when_no_upstream_failed(tmp_path):
    text = scaffold("fan_in", "-f", str(JOBS / "fan_in.py"))
    assert 'DagsterOperator(task_id="sum_ten", step_key="sum_ten", trigger_rule="none_failed")' in (
        text
    )
    assert 'DagsterOperator(task_id="plus_ten", step_key="plus_ten")' in text
    assert "task_group" not in text


def test_two_mapped_dynamic_outputs_of_one_op_are_refused_in_one_sentence(tmp_path):
    done = run_cli("scaffold", "two_dynamic_outputs", "-f", str(JOBS / "dynamic.py"))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "dagster-airflow scaffold: job 'two_dynamic_outputs' maps over 2 dynamic outputs of op "
        "'split' (evens, odds): Airflow maps tasks over the one list a task returns; give each "
        "DynamicOut an op of its own."
    )


def test_nested_mapping_is_refused_in_one_sentence_naming_the_op(tmp_path):
    done = run_cli("scaffold", "nested", "-f", str(JOBS / "nested_mapping.py"))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert (
        "op 'work' cannot be downstream of more than one dynamic output. It is downstream of "
        'both "pieces:result" and "sub_pieces:result"' in done.stderr
    )
