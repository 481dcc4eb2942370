"""`dagster-airflow scaffold`: the DAG file it writes, and each bad input it refuses."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import CLI, EXAMPLES, JOBS, ROOT, run_cli, scaffold

DEMO = ["demo_pipeline", "-f", str(EXAMPLES / "demo.py"), "-e", str(EXAMPLES / "demo.yml")]

# Imports a DAG file the way Airflow's DAG processor does and reports its tasks, edges and what
# the import pulled in.
INSPECT_DAG = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("scaffolded_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
dag = module.dag
# What an unmapped task runs with: its own runner and storage, else the DAG's.
task = next(dag.task_dict[t] for t in sorted(dag.task_dict) if not dag.task_dict[t].is_mapped)
print(json.dumps({
    "dag_id": dag.dag_id,
    "edges": sorted([u, d] for d, t in dag.task_dict.items() for u in t.upstream_task_ids),
    "tasks": sorted(dag.task_dict),
    "dagster_modules": sorted(m for m in sys.modules if m == "dagster" or m.startswith("dagster.")),
    "runner": task.setting("runner") if hasattr(task, "setting") else None,
    "storage": task.setting("storage") if hasattr(task, "setting") else None,
    "queues": {task_id: task.queue for task_id, task in dag.task_dict.items()},
    "doc_md": dag.doc_md,
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


def test_the_dag_docs_show_the_job_its_ops_and_where_each_step_runs_and_stores(tmp_path):
    args = ["pieces", "-f", str(EXAMPLES / "pieces.py"), "--runner", "docker"]
    args += ["--runner-option", "image=my-steps:1", "--storage", "s3"]
    args += ["--storage-option", "bucket=my-runs", "--storage-option", "prefix=team/runs"]
    dag_file = tmp_path / "pieces_dag.py"
    dag_file.write_text(scaffold(*args))

    doc = inspect_dag(dag_file)["doc_md"]  # as Airflow's DAG processor reads it

    runs = "`docker` (image='my-steps:1')"
    stored = "`s3://my-runs/team/runs/{dagster run id}"
    assert doc.startswith("### Dagster job `pieces`\n")
    # Said once for every step; each step's row names its task and op.
    assert (
        f"Each step runs with runner {runs}; its outputs go to {stored}/{{step}}/{{output}}` "
        "(storage `s3`), where `{step}` is the step key (for a mapped step: "
        "`op[{mapping key}]`)."
    ) in doc
    assert "| Step (task) | Op |" in doc
    # A step whose op and task id are its key has no row: the grid shows it.
    assert "`split_into_pieces`" not in doc
    assert "| `compute_piece[?]` (task `compute_piece`) | `compute_piece` |" in doc.splitlines()
    assert f"Regenerate this file: `dagster-airflow scaffold {' '.join(args)}`" in doc
    assert "Plan fingerprint: `" in doc


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
    written = tmp_path / "numbers.py"
    assert written.exists()
    assert f"Wrote DAG 'numbers' (4 tasks) to {written}" in done.stdout
    assert inspect_dag(written)["tasks"] == ["count", "double", "extract", "total"]


def test_install_writes_to_airflow_home_dags_by_default(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path / "home")}
    done = run_cli("scaffold", *DEMO, "--install", env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "home" / "dags" / "demo_pipeline.py").exists()


def test_the_queue_option_routes_every_task_and_step_queue_some_of_them(tmp_path):
    text = scaffold(
        *DEMO,
        "--queue",
        "east",
        "--step-queue",
        "count_letters=west",
        "--step-queue",
        "summarize=west",
    )
    path = tmp_path / "dag.py"
    path.write_text(text)
    assert '"queue": "east",' in text
    assert inspect_dag(path)["queues"] == {
        "multiply_the_word": "east",
        "count_letters": "west",
        "reverse_word": "east",
        "count_reversed": "east",
        "summarize": "west",
    }
    # Without the options, Airflow's default queue (from its [operators] default_queue).
    path.write_text(scaffold(*DEMO))
    assert set(inspect_dag(path)["queues"].values()) == {"default"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [*DEMO, "--step-queue", "count_leters=west"],
            "--step-queue names the step 'count_leters', which job 'demo_pipeline' does not "
            "have; its steps are: count_letters, count_reversed, multiply_the_word, ",
        ),
        (
            [*DEMO, "--queue", "east coast"],
            "--queue 'east coast' is not a queue name; use letters, digits,",
        ),
        (
            [*DEMO, "--step-queue", "west"],
            "--step-queue 'west' is not STEP=QUEUE; write it as --step-queue my_op=east.",
        ),
        (
            ["demo_pipeline", "-f", str(EXAMPLES / "demo.py")],
            "the run config for job 'demo_pipeline' is invalid: Missing required config entry "
            '"ops" at the root; you must provide this value in your run config; example config',
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
            "are: env, idle_timeout, kill_timeout, python, runtime_dir, warm, working_dir.",
        ),
        (
            [*DEMO, "--storage-option", "base_dir"],
            "--storage-option 'base_dir' is not KEY=VALUE",
        ),
    ],
    ids=[
        "unknown-step-queue",
        "bad-queue-name",
        "step-queue-not-key-value",
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


def test_install_names_the_file_for_the_dag_id_and_loses_nothing(tmp_path):
    first = run_cli("scaffold", *DEMO, "--install", "--dags-folder", str(tmp_path))
    second = run_cli(
        "scaffold", *DEMO, "--dag-id", "demo_hourly", "--install", "--dags-folder", str(tmp_path)
    )
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo_hourly.py", "demo_pipeline.py"]
    assert inspect_dag(tmp_path / "demo_hourly.py")["dag_id"] == "demo_hourly"
    assert inspect_dag(tmp_path / "demo_pipeline.py")["dag_id"] == "demo_pipeline"
    # Installing the same DAG again replaces its own file.
    again = run_cli("scaffold", *DEMO, "--install", "--dags-folder", str(tmp_path))
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("held", ["another_dag", None])
def test_install_refuses_a_file_holding_another_dag_unless_forced(tmp_path, held):
    target = tmp_path / "demo_pipeline.py"
    if held:
        other = run_cli("scaffold", *DEMO, "--dag-id", held).stdout
        target.write_text(other)
        what = f"DAG {held!r}"
    else:
        target.write_text("# my own hand-written DAG\n")
        what = "a file not written by the scaffold"
    before = target.read_text()
    done = run_cli("scaffold", *DEMO, "--install", "--dags-folder", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"dagster-airflow scaffold: {str(target)!r} holds {what}; pass --force to replace it, "
        "or choose another --dag-id."
    )
    assert target.read_text() == before
    forced = run_cli("scaffold", *DEMO, "--install", "--force", "--dags-folder", str(tmp_path))
    assert forced.returncode == 0, forced.stderr
    assert inspect_dag(target)["dag_id"] == "demo_pipeline"


def test_install_refuses_the_same_dag_under_an_older_name_unless_forced(tmp_path):
    old = tmp_path / "demo_demo_pipeline.py"  # what earlier versions named it
    old.write_text(scaffold(*DEMO))
    done = run_cli("scaffold", *DEMO, "--install", "--dags-folder", str(tmp_path))
    assert done.returncode == 2
    assert f"DAG 'demo_pipeline' is already in {str(old)!r}" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == [old.name]
    forced = run_cli("scaffold", *DEMO, "--install", "--force", "--dags-folder", str(tmp_path))
    assert forced.returncode == 0, forced.stderr
    assert f"Removed {old}" in forced.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["demo_pipeline.py"]


@pytest.mark.parametrize("umask", ["022", "027"])
def test_the_installed_file_honours_the_umask(tmp_path, umask):
    import stat

    done = subprocess.run(
        [
            "sh",
            "-c",
            f'umask {umask} && exec "$0" "$@"',
            CLI,
            "scaffold",
            *DEMO,
            "--install",
            "--dags-folder",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    mode = stat.S_IMODE((tmp_path / "demo_pipeline.py").stat().st_mode)
    assert mode == 0o666 & ~int(umask, 8)


@pytest.mark.parametrize(
    ("folder", "message"),
    [
        ("missing/dags", "the dags folder {folder!r} does not exist; create it, or pass"),
        ("a_file", "the dags folder {folder!r} is not a folder"),
        ("/proc", "cannot write the DAG file into the dags folder '/proc'"),
    ],
)
def test_a_dags_folder_that_cannot_be_used_is_one_sentence(tmp_path, folder, message):
    (tmp_path / "a_file").write_text("")
    folder = folder if folder.startswith("/") else str(tmp_path / folder)
    done = run_cli("scaffold", *DEMO, "--install", "--dags-folder", folder)
    assert done.returncode == 2
    assert message.format(folder=folder) in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


# Each task's Airflow retry settings, as the DAG processor builds them.
INSPECT_RETRIES = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("scaffolded_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps({
    task_id: {
        "retries": task.retries,
        "retry_delay": task.retry_delay.total_seconds(),
        "retry_exponential_backoff": task.retry_exponential_backoff,
        "retry_policy": type(task.retry_policy).__name__,
        "dagster_only": getattr(task.retry_policy, "dagster_only", None),
    }
    for task_id, task in module.dag.task_dict.items()
}))
"""


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


def retry_settings(text: str, tmp_path) -> dict:
    path = tmp_path / "retries_dag.py"
    path.write_text(text)
    done = subprocess.run(
        [sys.executable, "-c", INSPECT_RETRIES, str(path)], capture_output=True, text=True, cwd="/"
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def settings(retries: int, delay: float = 0.0, backoff: float = 0) -> dict:
    return {
        "retries": retries,
        "retry_delay": delay,
        "retry_exponential_backoff": backoff,
        "retry_policy": "DagsterRetryPolicy",
        # Retried only when Dagster retries the step (task/retry_gate.py).
        "dagster_only": True,
    }


def test_each_tasks_retries_come_from_its_ops_retry_policy(tmp_path):
    record = tmp_path / "record.yml"
    record.write_text("resources:\n  record:\n    config:\n      path: /dev/null\n")
    text = scaffold("retry_policies", "-f", str(JOBS / "retries.py"), "-e", str(record))
    default_args = text.split("DEFAULT_ARGS = {", 1)[1].split("}\n", 1)[0]
    assert '"retries": 10,\n    "dagster_retries_only": True,' in default_args
    assert retry_settings(text, tmp_path) == {
        # @op(retry_policy=RetryPolicy(max_retries=3, delay=0.2, backoff=EXPONENTIAL))
        "flaky_twice": settings(3, 0.2, 2.0),
        # .with_retry_policy(RetryPolicy(max_retries=2, delay=0.3, jitter=FULL))
        "flaky_once": settings(2, 0.3),
        # the rest: @job(op_retry_policy=RetryPolicy(max_retries=1, delay=0.1, backoff=LINEAR)),
        # for which Airflow has no backoff (the delay of each try is Dagster's own anyway)
        "job_policy_op": settings(1, 0.1),
        "always_fails": settings(1, 0.1),
        "after_failure": settings(1, 0.1),
        "steady": settings(1, 0.1),
        # the op's own policy wins over the job's
        "refuses_retry": settings(2, 0.1),
    }


def test_ops_without_a_policy_have_tries_for_retry_requests_and_asset_jobs_keep_theirs(
    tmp_path,
):
    record = tmp_path / "record.yml"
    record.write_text("resources:\n  record:\n    config:\n      path: /dev/null\n")
    text = scaffold("retry_requested", "-f", str(JOBS / "retries.py"), "-e", str(record))
    # Tries for a RetryRequested(max_retries=N) up to 10, each run only at Dagster's request.
    assert retry_settings(text, tmp_path) == {
        "requests_retry": settings(10, 300.0),
        "fails_without_policy": settings(10, 300.0),
    }
    # define_asset_job(op_retry_policy=RetryPolicy(max_retries=1, delay=30, EXPONENTIAL)), and
    # @asset(retry_policy=RetryPolicy(max_retries=4, delay=2)) winning over it.
    text = scaffold("asset_retries", "-f", str(JOBS / "retries.py"))
    assert retry_settings(text, tmp_path) == {
        "own_policy_asset": settings(4, 2.0),
        "job_policy_asset": settings(1, 30.0, 2.0),
    }


def test_scaffolded_retry_arguments_are_formatted_as_ruff_would(tmp_path):
    record = tmp_path / "record.yml"
    record.write_text("resources:\n  record:\n    config:\n      path: /dev/null\n")
    path = tmp_path / "retries_dag.py"
    path.write_text(scaffold("retry_policies", "-f", str(JOBS / "retries.py"), "-e", str(record)))
    ruff = ROOT / ".venv" / "bin" / "ruff"
    done = subprocess.run(
        [str(ruff), "format", "--check", "--diff", "--line-length", "99", str(path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("job_name", "run_config", "expected"),
    [
        ("mapped", "word: hey\ntimes: 2\n", '\nRUN_CONFIG = {"word": "hey", "times": 2}\n'),
        ("default_config", None, "\nRUN_CONFIG = {}\n"),
        ("static_partitioned", None, "\nRUN_CONFIG = {}\n"),
    ],
)
def test_jobs_with_a_config_mapping_or_their_own_config_scaffold(
    tmp_path, job_name, run_config, expected
):
    args = [job_name, "-f", str(JOBS / "config_mapping.py")]
    if run_config:
        (tmp_path / "run.yml").write_text(run_config)
        args += ["-e", str(tmp_path / "run.yml")]
    assert expected in scaffold(*args)


def test_the_retry_example_in_the_docs_is_what_the_scaffold_writes(tmp_path):
    section = (ROOT / "docs" / "scaffold.md").read_text().split("## Retries", 1)[1]
    shown = section.split("```python\n", 1)[1].split("```", 1)[0]
    record = tmp_path / "record.yml"
    record.write_text("resources:\n  record:\n    config:\n      path: /dev/null\n")
    text = scaffold("retry_policies", "-f", str(JOBS / "retries.py"), "-e", str(record))
    # The docs indent the block inside a list item; the DAG file by four spaces, in the DAG.
    block = textwrap.dedent(shown).strip() + "\n"
    assert textwrap.indent(block, "    ") in text


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
    assert 'DagsterOperator(task_id="sum_ten", trigger_rule="none_failed")' in text
    assert 'DagsterOperator(task_id="plus_ten")' in text
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


def test_install_refuses_a_dag_id_that_another_jobs_dag_holds_unless_forced(tmp_path):
    installed = run_cli(
        "scaffold", *DEMO, "--dag-id", "shared", "--install", "--dags-folder", str(tmp_path)
    )
    assert installed.returncode == 0, installed.stderr
    target = tmp_path / "shared.py"
    before = target.read_text()
    other = ["numbers", "-m", "tests.jobs.pkg.jobs", "-d", str(ROOT), "--dag-id", "shared"]

    done = run_cli("scaffold", *other, "--install", "--dags-folder", str(tmp_path))

    assert done.returncode == 2
    assert done.stderr == (
        f"dagster-airflow scaffold: {str(target)!r} holds DAG 'shared' of job 'demo_pipeline' "
        f"from {str(EXAMPLES / 'demo.py')!r}, not of job 'numbers' from this code location; "
        "choose another --dag-id, or pass --force to replace it.\n"
    )
    assert target.read_text() == before
    forced = run_cli("scaffold", *other, "--install", "--force", "--dags-folder", str(tmp_path))
    assert forced.returncode == 0, forced.stderr
    assert '"job_name": "numbers"' in target.read_text()


HAND_WRITTEN = {
    "with-dag": 'from airflow.sdk import DAG\n\nwith DAG(dag_id="demo_pipeline"):\n    pass\n',
    "positional": 'import airflow.sdk\n\ndag = airflow.sdk.DAG("demo_pipeline")\n',
    "decorator": "from airflow.sdk import dag\n\n\n@dag\ndef demo_pipeline():\n    pass\n",
    "decorator-id": 'from airflow.sdk import dag\n\n@dag(dag_id="demo_pipeline")\ndef f(): ...\n',
}


@pytest.mark.parametrize("how", sorted(HAND_WRITTEN))
def test_install_refuses_a_dag_id_a_hand_written_file_defines_at_any_depth(tmp_path, how):
    hand_written = tmp_path / "team" / "legacy" / "old_dag.py"
    hand_written.parent.mkdir(parents=True)
    hand_written.write_text(HAND_WRITTEN[how])

    done = run_cli("scaffold", *DEMO, "--install", "--dags-folder", str(tmp_path))

    assert done.returncode == 2
    assert done.stderr == (
        f"dagster-airflow scaffold: DAG 'demo_pipeline' is already in {str(hand_written)!r} "
        "(a file not written by the scaffold), and Airflow refuses a DAG id defined twice; "
        "delete that file or its DAG, choose another --dag-id, or pass --force to write it "
        "anyway (removing older scaffolded files).\n"
    )
    assert not (tmp_path / "demo_pipeline.py").exists()
    forced = run_cli("scaffold", *DEMO, "--install", "--force", "--dags-folder", str(tmp_path))
    assert forced.returncode == 0, forced.stderr
    assert hand_written.read_text() == HAND_WRITTEN[how]  # --force never deletes a user's file
