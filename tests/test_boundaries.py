"""The two sides stay apart (DESIGN.md section 1): each boundary checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dagster_airflow.model import CodeLocation, StepRequest, StorageSpec
from tests.conftest import EXAMPLES

REPORT = """
import json, sys
{imports}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("dagster", "airflow"))))
"""


def imported_after(imports: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", REPORT.format(imports=imports)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_package_imports_neither_side():
    assert imported_after("import dagster_airflow, dagster_airflow.model") == []


@pytest.mark.parametrize(
    "imports",
    [
        "import dagster_airflow.operator",
        "from dagster_airflow import DagsterOperator",
        "import dagster_airflow.runners.subprocess, dagster_airflow.plugins.manager",
        "import dagster_airflow.runners.graphql",
        "import dagster_airflow.step_server.client, dagster_airflow.step_server.protocol",
        "import dagster_airflow.ui.airflow_plugin, dagster_airflow.ui.step_view",
        "from dagster_airflow import DagsterSensorOperator",
    ],
)
def test_airflow_side_imports_no_dagster(imports):
    modules = imported_after(imports)
    assert not [m for m in modules if m.split(".")[0] == "dagster"]


@pytest.mark.parametrize(
    "imports",
    [
        "import dagster_airflow.worker.execute, dagster_airflow.job.compile\n"
        "import dagster_airflow.job.code_location",
        "import dagster_airflow.worker.io_manager, dagster_airflow.scaffold.render",
        # Every built-in backend (get_plugins imports each only when it is named).
        "from dagster_airflow.plugins.manager import Plugins, build_plugin_manager\n"
        "Plugins(build_plugin_manager())",
        "import dagster_airflow.step_server.server as s; s._warm()",
        "import dagster_airflow.worker.sensor, dagster_airflow.scaffold.sensor_dag\n"
        "import dagster_airflow.job.sensors, dagster_airflow.scaffold.check_folder",
    ],
)
def test_dagster_side_imports_no_airflow(imports):
    modules = imported_after(imports)
    assert not [m for m in modules if m.split(".")[0] == "airflow"]


def test_a_whole_step_runs_without_importing_airflow(tmp_path):
    """Execute a real step in the worker, then check what that process had imported."""
    request = StepRequest(
        code_location=CodeLocation(python_file=str(EXAMPLES / "demo.py")),
        job_name="demo_pipeline",
        step_key="multiply_the_word",
        run_id="8a1c1f43-64a3-5b7c-9a53-5b8b6f2d4e10",
        run_config={
            "ops": {"multiply_the_word": {"config": {"factor": 2}, "inputs": {"word": "x"}}}
        },
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
    )
    code = (
        "import io, sys\n"
        "from dagster_airflow.worker.execute import execute_step\n"
        f"rc = execute_step({request.to_json()!r}, io.StringIO())\n"
        "leaked = [m for m in sys.modules if m.split('.')[0] == 'airflow']\n"
        "print(rc, leaked)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stdout + done.stderr
    assert (tmp_path / request.run_id / "multiply_the_word" / "result").exists()


def imports_of(path) -> set[str]:
    """Every module a file imports, at any depth of its code (inside functions too)."""
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


RUNNERS = ["docker", "ecs", "graphql", "subprocess", "lifecycle", "streams", "base", "context"]


@pytest.mark.parametrize("runner", RUNNERS)
def test_runners_import_nothing_of_airflow_the_plugin_manager_or_the_ui(runner):
    """What a runner needs of the task comes through its RunContext (issue 15, point 3)."""
    from tests.conftest import ROOT

    path = ROOT / "dagster_airflow" / "runners" / f"{runner}.py"
    if not path.exists():
        pytest.skip(f"no {path.name} yet")
    forbidden = [
        name
        for name in imports_of(path)
        if name.split(".")[0] == "airflow"
        or name in ("dagster_airflow.plugins.manager", "dagster_airflow.operator")
        or name.startswith("dagster_airflow.ui")
    ]
    assert forbidden == [], f"{path.name} imports {forbidden}"


def test_the_operator_and_the_ui_links_do_not_import_each_other():
    from tests.conftest import ROOT

    package = ROOT / "dagster_airflow"
    assert "dagster_airflow.ui.links" in imports_of(package / "operator.py")
    assert "dagster_airflow.operator" not in imports_of(package / "ui" / "links.py")
