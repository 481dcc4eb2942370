"""Installed as users install it: `make dist`, then the README's install lines, one environment per
side ([dagster] without Airflow, [airflow] without Dagster), and the demo through them.

Then Dagster Labs' retired `dagster-airflow` (the same module, on the public index) goes into
both environments under ours, and the CLI, the Airflow plugin and the operator each say so.
"""

from __future__ import annotations

import pickle
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from dagster_airflow.distribution import DISTRIBUTION
from dagster_airflow.storage.filesystem import FilesystemStorage
from dagster_airflow.testing import AirflowHome
from dagster_airflow.testing.venv import create_venv, uv_command
from tests.conftest import ROOT

pytestmark = pytest.mark.airflow

RETIRED_SENTENCE = "the retired package dagster-airflow"


def readme_install_lines() -> list[str]:
    """The pip arguments of the README's install lines, as written."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## In five lines\n\n```\n(.*?)```", text, re.S).group(1)
    lines = [line.split("#")[0].strip() for line in block.splitlines()]
    assert lines[0] == "make dist", lines
    return [shlex.split(line)[2] for line in lines if line.startswith("pip install ")]


def run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600
    )


def has_module(python: Path, name: str) -> bool:
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({name!r}) is None)"
    return run(str(python), "-c", probe).returncode == 0


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """`make dist` into a folder of the test's: the wheel and the sdist."""
    dist = tmp_path_factory.mktemp("dist")
    done = run("make", "--no-print-directory", "dist", f"DIST={dist}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.suffix for p in dist.iterdir() if not p.name.startswith(".")) == [
        ".gz",
        ".whl",
    ]
    return dist


def test_the_readme_install_lines_install_one_side_each_and_the_demo_runs(built, tmp_path):
    dagster_line, airflow_line = readme_install_lines()
    # The lines name dist/ in a clone; here the wheel is in the test's own dist folder.
    wheel = dagster_line.split("[")[0]
    assert (built / Path(wheel).name).is_file(), f"README names {wheel}, make dist built another"
    venvs = {}
    for side, line in (("dagster", dagster_line), ("airflow", airflow_line)):
        requirement = str(built / Path(line).name)
        # uv's pip, from its cache and the pinned versions: the same arguments as the README's.
        venvs[side] = create_venv(tmp_path / side, [requirement], ROOT / "constraints.txt")
    dagster_python = venvs["dagster"] / "bin" / "python"
    airflow_python = venvs["airflow"] / "bin" / "python"
    assert has_module(dagster_python, "dagster") and not has_module(dagster_python, "airflow")
    assert has_module(airflow_python, "airflow") and not has_module(airflow_python, "dagster")

    home = AirflowHome(tmp_path / "airflow", python=str(airflow_python))
    storage_dir = tmp_path / "storage"
    scaffold = run(
        str(venvs["dagster"] / "bin" / "dagster-airflow"),
        "scaffold",
        "demo_pipeline",
        "-f",
        "examples/demo.py",
        "-e",
        "examples/demo.yml",
        "--runner-option",
        f"python={dagster_python}",
        "--storage-option",
        f"base_dir={storage_dir}",
        "--install",
        "--dags-folder",
        str(home.dags_folder),
    )
    assert scaffold.returncode == 0, scaffold.stderr
    assert RETIRED_SENTENCE not in scaffold.stderr

    result = home.dags_test("demo_pipeline")
    assert result.succeeded, result.output[-4000:]
    assert set(result.states.values()) == {"success"}
    run_id = next(iter(result.xcoms.values()))["result"].split("/")[-3]
    storage = FilesystemStorage(base_dir=str(storage_dir))
    with storage.open_read(storage.key(run_id, "count_letters", "result")) as stream:
        assert pickle.load(stream) == {"b": 2, "a": 2, "r": 2}  # "bar" * 2
    assert RETIRED_SENTENCE not in result.output

    # The retired package beside ours, ours installed last (the other order leaves its
    # __init__.py in place of ours, and nothing of ours runs to say so).
    for venv in venvs.values():
        python = str(venv / "bin" / "python")
        install = [*uv_command(), "pip", "install", "--quiet", "--python", python]
        retired = run(*install, "--no-deps", "dagster-airflow")
        assert retired.returncode == 0, retired.stderr
        ours = run(*install, "--no-deps", "--reinstall", str(built / Path(wheel).name))
        assert ours.returncode == 0, ours.stderr
    listed = run(str(venvs["dagster"] / "bin" / "dagster-airflow"), "plugins")
    warning = [line for line in listed.stderr.splitlines() if RETIRED_SENTENCE in line]
    assert len(warning) == 1, listed.stderr
    assert "pip uninstall dagster-airflow" in warning[0]
    assert DISTRIBUTION in warning[0]

    plugins = home.airflow("plugins", "--output", "json")
    assert RETIRED_SENTENCE in plugins.stdout + plugins.stderr, plugins.stderr[-3000:]
    task = home.airflow("tasks", "test", "demo_pipeline", "multiply_the_word")
    assert task.returncode == 0, (task.stdout + task.stderr)[-3000:]
    assert "pip uninstall dagster-airflow" in task.stdout + task.stderr
