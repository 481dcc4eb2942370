"""Code location discovery: `dagster-airflow scaffold JOB` with no -f/-m/-w finds what Dagster's
own CLI finds in the working directory, and the DAG file names it explicitly."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from dagster_airflow.job.discovery import discover
from tests.conftest import EXAMPLES, ROOT, run_cli
from tests.ui.test_airflow_plugin import default_args


def dagster_finds(directory: Path, monkeypatch) -> list[dict]:
    """What `dagster job execute` with no target loads in this directory (Dagster 1.13's own
    _get_workspace_load_target_from_cli_opts), as code location dicts."""
    from dagster._cli.workspace.cli_target import (
        WorkspaceOpts,
        _get_workspace_load_target_from_cli_opts,
    )

    monkeypatch.chdir(directory)
    target = _get_workspace_load_target_from_cli_opts(WorkspaceOpts())
    found = []
    for origin in target.create_origins():
        loadable = origin.loadable_target_origin
        found.append(
            {
                "python_file": loadable.python_file,
                "module_name": loadable.module_name,
                "working_directory": str(Path(loadable.working_directory).absolute()),
                "location_name": origin.location_name,
            }
        )
    return found


def ours(directory: Path) -> list[dict]:
    """What our discovery finds, a workspace expanded into its code locations."""
    from dagster_airflow.job.code_location import workspace_locations

    found, _ = discover(directory)
    if found[0].workspace:
        found = workspace_locations(found[0])
    return [
        {
            "python_file": c.python_file,
            "module_name": c.module_name,
            "working_directory": c.working_directory,
            # Dagster names an unnamed module location after its module.
            "location_name": c.location_name or c.module_name,
        }
        for c in found
    ]


def project(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    shutil.copy(EXAMPLES / "demo.yml", root / "env.yml")
    return root


DEMO = (EXAMPLES / "demo.py").read_text()
TOOL_DAGSTER = {
    "pyproject.toml": """
        [project]
        name = "demo"
        [tool.dagster]
        module_name = "demo"
        code_location_name = "demo_execution_repo"
    """,
    "demo.py": DEMO,
}
WORKSPACE = {
    "workspace.yaml": """
        load_from:
          - python_file:
              relative_path: jobs/demo.py
              location_name: from_workspace
    """,
    "jobs/demo.py": DEMO,
}
DG_PROJECT = {
    "pyproject.toml": """
        [project]
        name = "demo-project"
        [tool.dg]
        directory_type = "project"
        [tool.dg.project]
        root_module = "demo_project"
    """,
    "demo_project/__init__.py": "",
    "demo_project/demo.py": DEMO.replace("defs = dg.Definitions(jobs=[demo_pipeline])", ""),
    # As `dg scaffold project` writes it: a @definitions function.
    "demo_project/definitions.py": """
        import dagster as dg

        from demo_project.demo import demo_pipeline


        @dg.definitions
        def defs():
            return dg.Definitions(jobs=[demo_pipeline])
    """,
}


@pytest.mark.parametrize(
    "files, expected",
    [
        (
            TOOL_DAGSTER,
            {"module_name": "demo", "location_name": "demo_execution_repo"},
        ),
        (
            WORKSPACE,
            {"python_file": "{root}/jobs/demo.py", "location_name": "from_workspace"},
        ),
        (DG_PROJECT, {"module_name": "demo_project.definitions"}),
    ],
    ids=["tool.dagster", "workspace.yaml", "dg project"],
)
def test_each_form_finds_what_dagster_finds_and_the_dag_names_it(
    files, expected, tmp_path, monkeypatch
):
    root = project(tmp_path, files)
    assert ours(root) == dagster_finds(root, monkeypatch)

    done = run_cli("scaffold", "demo_pipeline", "-e", "env.yml", cwd=root)

    assert done.returncode == 0, done.stderr
    location = default_args(done.stdout)["code_location"]
    wanted = {k: v.format(root=root) for k, v in expected.items()}
    assert location == {**wanted, "working_directory": str(root)}
    assert location.get("python_file", "/").startswith("/")
    # The file says how to scaffold it again: from the directory where it was found.
    command = f"cd {root} && dagster-airflow scaffold demo_pipeline -e env.yml"
    assert f"\nSCAFFOLD_COMMAND = {json.dumps(command)}\n" in done.stdout


def test_pyproject_comes_before_workspace_yaml_as_in_dagster(tmp_path, monkeypatch):
    root = project(tmp_path, {**WORKSPACE, **TOOL_DAGSTER})
    assert ours(root) == dagster_finds(root, monkeypatch)
    assert ours(root)[0]["module_name"] == "demo"


def test_a_pyproject_without_a_dagster_block_is_passed_over(tmp_path, monkeypatch):
    root = project(tmp_path, {**WORKSPACE, "pyproject.toml": "[tool.ruff]\nline-length = 99\n"})
    assert ours(root) == dagster_finds(root, monkeypatch)
    assert ours(root)[0]["location_name"] == "from_workspace"


def test_workspace_yml_is_the_last_resort(tmp_path, monkeypatch):
    root = project(tmp_path, {"workspace.yml": WORKSPACE["workspace.yaml"], "jobs/demo.py": DEMO})
    assert ours(root) == dagster_finds(root, monkeypatch)


def test_a_modules_list_scaffolds_from_the_module_that_has_the_job(tmp_path):
    root = project(
        tmp_path,
        {
            "pyproject.toml": """
                [tool.dagster]
                modules = [{type = "module", name = "other"}, {type = "module", name = "demo"}]
            """,
            "other.py": "import dagster as dg\n\n@dg.job\ndef other():\n    pass\n",
            "demo.py": DEMO,
        },
    )
    done = run_cli("scaffold", "-j", "demo_pipeline", "-e", "env.yml", cwd=root)
    assert done.returncode == 0, done.stderr
    assert default_args(done.stdout)["code_location"]["module_name"] == "demo"


def test_install_names_the_file_after_the_dag_id(tmp_path):
    root = project(tmp_path, TOOL_DAGSTER)
    dags = tmp_path / "dags"
    dags.mkdir()
    done = run_cli(
        *("scaffold", "demo_pipeline", "-e", "env.yml", "--install"),
        *("--dags-folder", str(dags)),
        cwd=root,
    )
    assert done.returncode == 0, done.stderr
    # Named for the DAG id (two DAGs of one job never share a file), whatever was discovered.
    assert [p.name for p in dags.iterdir()] == ["demo_pipeline.py"]


def test_nothing_found_says_what_was_looked_for_and_which_flag_to_pass(tmp_path):
    done = run_cli("scaffold", "demo_pipeline", "-e", "env.yml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == (
        f"dagster-airflow scaffold: no code location found in {str(tmp_path)!r}: looked for a "
        "pyproject.toml with [tool.dagster] or [tool.dg.project], a workspace.yaml or a "
        "workspace.yml; run the scaffold from your project's directory, or pass -f FILE.py, "
        "-m MODULE or -w workspace.yaml.\n"
    )
    shown = (ROOT / "docs" / "scaffold.md").read_text()
    assert done.stderr.replace(str(tmp_path), "/home/me") in shown


def test_dg_autoload_defs_is_refused_in_one_sentence(tmp_path):
    root = project(
        tmp_path,
        {"pyproject.toml": '[tool.dg.project]\nroot_module = "pkg"\nautoload_defs = true\n'},
    )
    done = run_cli("scaffold", "demo_pipeline", cwd=root)
    assert done.returncode == 2
    assert "sets autoload_defs, which dagster-airflow cannot load" in done.stderr
    assert "pass -m pkg.definitions." in done.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["demo_pipeline", "-j", "other_job"],
            "two jobs named: 'demo_pipeline' and -j 'other_job'; name the job once, or each job "
            "with -j.",
        ),
        (
            [],
            "no job named; pass the Dagster job's name, as in `dagster-airflow scaffold my_job "
            "-e run_config.yml` or -j my_job, or --all for every job of the code location.",
        ),
    ],
    ids=["two different jobs", "no job"],
)
def test_job_named_twice_or_not_at_all_is_one_sentence(args, message, tmp_path):
    root = project(tmp_path, TOOL_DAGSTER)
    done = run_cli("scaffold", *args, "-e", "env.yml", cwd=root)
    assert done.returncode == 2
    assert done.stderr == f"dagster-airflow scaffold: {message}\n"


def test_j_and_the_same_positional_name_agree(tmp_path):
    root = project(tmp_path, TOOL_DAGSTER)
    both = run_cli("scaffold", "demo_pipeline", "-j", "demo_pipeline", "-e", "env.yml", cwd=root)
    only_j = run_cli("scaffold", "-j", "demo_pipeline", "-e", "env.yml", cwd=root)
    assert both.returncode == only_j.returncode == 0, both.stderr + only_j.stderr

    # The same DAG; only the command that scaffolds it again (docstring, doc_md) says it as given.
    def dag(text: str) -> list[str]:
        return [line for line in text.splitlines() if "dagster-airflow scaffold" not in line]

    assert dag(both.stdout) == dag(only_j.stdout)
    assert "-j demo_pipeline" in only_j.stdout
