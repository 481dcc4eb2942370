"""The docs' examples run: each `dagster-airflow scaffold` command in docs/, and the DAG file that
docs/scaffold.md shows is what the scaffold writes today."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from dagster_airflow.storage.filesystem import default_base_dir
from tests.conftest import ROOT, run_cli

DOCS = ROOT / "docs"
SHOWN_ROOT = "/home/me/project"


def console_commands(name: str) -> list[str]:
    text = (DOCS / name).read_text()
    blocks = re.findall(r"```console\n(.*?)```", text, re.S)
    return [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]


SCAFFOLD_COMMANDS = [
    (name, command)
    for name in (
        "quickstart.md",
        "scaffold.md",
        "scheduling.md",
        "deployment.md",
        "dagster-instance.md",
        "project.md",
    )
    for command in console_commands(name)
    if command.startswith("dagster-airflow scaffold")
]


@pytest.mark.parametrize(("page", "command"), SCAFFOLD_COMMANDS)
def test_scaffold_commands_in_docs_work(page, command, tmp_path):
    args = shlex.split(command)[1:]
    done = run_cli(*args, env={"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path)})
    assert done.returncode == 0, f"{page}: {command}\n{done.stderr}"


def ruff_format(text: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--line-length", "99", "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_scaffold_md_shows_the_file_the_scaffold_writes():
    shown = re.search(
        r"## The file it writes.*?```python\n(.*?)```", (DOCS / "scaffold.md").read_text(), re.S
    )
    done = run_cli("scaffold", "demo_pipeline", "-f", "examples/demo.py", "-e", "examples/demo.yml")
    assert done.returncode == 0, done.stderr
    # The checkout's path differs in length from the one shown, and the scaffold wraps a long
    # line as ruff format would: compare both as ruff lays them out once the paths agree.
    written = done.stdout.replace(str(ROOT), SHOWN_ROOT)
    # The storage's default folder is the user's own: the page shows uid 1000's.
    written = written.replace(f"{default_base_dir()}/", "/tmp/dagster-airflow-1000/")
    date = re.compile(r"datetime\.datetime\(\d+, \d+, \d+,")
    same_day = "datetime.datetime(2000, 1, 1,"
    assert ruff_format(date.sub(same_day, written)) == ruff_format(
        date.sub(same_day, shown.group(1))
    )


@pytest.mark.airflow
def test_semantics_md_checks_the_demo_as_it_shows(airflow_home, tmp_path, monkeypatch):
    """The test docs/semantics.md tells users to write, run as written: the demo matches."""
    code = re.search(r"```python\n(.*?)```", (DOCS / "semantics.md").read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/semantics.md", "exec"), namespace)
    monkeypatch.chdir(ROOT)
    namespace["test_the_demo_runs_on_airflow_as_on_dagster"](airflow_home, tmp_path)


def test_scaffold_md_shows_the_mapped_tasks_the_scaffold_writes():
    page = (DOCS / "scaffold.md").read_text()
    section = page[page.index("## Dynamic outputs: mapped tasks") :]
    shown = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    done = run_cli("scaffold", "pieces", "-f", "examples/pieces.py")
    assert done.returncode == 0, done.stderr
    assert shown in done.stdout


def test_deployment_md_starts_celery_workers_as_the_celery_test_does():
    from harness.airflow_deployment import AirflowDeployment

    block = re.search(r"```sh\n(.*?)```", (DOCS / "deployment.md").read_text(), re.S)[1]
    shown = [shlex.split(line) for line in block.splitlines()]
    assert [args[-1] for args in shown] == ["east", "west"]
    for args in shown:
        assert AirflowDeployment.worker_command("airflow", args[-1])[: len(args)] == args
