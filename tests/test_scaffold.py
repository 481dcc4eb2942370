"""`dagster-airflow scaffold`: the DAG file it writes, and each bad input it refuses."""

from __future__ import annotations

import json
import subprocess
import sys

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
    written = tmp_path / "numbers.py"
    assert written.exists()
    assert f"Wrote DAG 'numbers' (4 tasks) to {written}" in done.stdout
    assert inspect_dag(written)["tasks"] == ["count", "double", "extract", "total"]


def test_install_writes_to_airflow_home_dags_by_default(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path / "home")}
    done = run_cli("scaffold", *DEMO, "--install", env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "home" / "dags" / "demo_pipeline.py").exists()


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
            "are: env, idle_timeout, kill_timeout, python, runtime_dir, warm, working_dir.",
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
