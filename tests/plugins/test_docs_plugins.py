"""docs/plugins.md's code is real: its runner blocks are the venv example package's own source,
its storage blocks run, and the storage they define passes the storage contract."""

from __future__ import annotations

import re
import shlex
import uuid
from pathlib import Path

import pytest

from dagster_airflow.model import CodeLocation, StepRequest, StorageSpec
from dagster_airflow.step_result import FAILURE, STOPPED
from dagster_airflow.testing import CONTRACT_JOB, RunnerContract, StorageContract, TaskLog
from dagster_airflow.testing.run_context import run_context_for
from tests.conftest import JOBS, ROOT, run_cli
from tests.runners.test_subprocess import run_and_kill_once_started

PAGE = ROOT / "docs" / "plugins.md"
MARKED = re.compile(r"<!-- docs-test: (run|same as (\S+)) -->\n```\w*\n(.*?)```", re.S)


def marked_blocks(kind: str) -> list[tuple[str | None, str]]:
    return [
        (source, code)
        for marker, source, code in MARKED.findall(PAGE.read_text())
        if marker.startswith(kind)
    ]


def run_blocks() -> dict:
    namespace: dict = {"__name__": "docs_plugins"}
    for _, code in marked_blocks("run"):
        exec(compile(code, str(PAGE), "exec"), namespace)
    return namespace


DOCS = run_blocks()  # at collection: a block that fails is an error of this module


@pytest.mark.parametrize(
    ("source", "code"),
    marked_blocks("same as"),
    ids=lambda value: value.split("\n")[0][:50] if value else "",
)
def test_runner_blocks_are_the_example_packages_source(source, code):
    assert code in (ROOT / source).read_text(), f"docs/plugins.md differs from {source}"


def test_the_page_has_blocks_of_each_kind():
    assert len(marked_blocks("same as")) >= 5
    assert len(marked_blocks("run")) >= 2


def test_the_typed_options_example_says_what_the_page_shows():
    assert DOCS["message"] == (
        "the sqlite storage's option 'timeout' must be a number of seconds above 0, got 'soon'; "
        "write it as timeout=30."
    )
    assert DOCS["message"] in " ".join(PAGE.read_text().split())
    assert DOCS["SqliteOptions"](path="/x").journal == "wal"


class TestDocsSqliteStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path):
        return DOCS["SqliteStorage"](path=str(tmp_path / "outputs.db"))


def test_the_scaffold_command_writes_the_venv_runner(tmp_path):
    text = PAGE.read_text()
    (command,) = [
        line[2:] for line in text.splitlines() if line.startswith("$ dagster-airflow scaffold")
    ]
    done = run_cli(*shlex.split(command)[1:])
    assert done.returncode == 0, done.stderr
    assert '"runner": {"name": "venv", "venv": "/opt/venvs/etl"},' in done.stdout


def test_the_plugin_listing_shown_is_what_the_command_prints():
    """docs/plugins.md shows `dagster-airflow plugins` as it prints with the venv example
    installed (as `make test` installs it)."""
    page = (ROOT / "docs" / "plugins.md").read_text()
    shown = re.search(r"```console\n\$ dagster-airflow plugins\n(.*?)```", page, re.S).group(1)
    done = run_cli("plugins")
    assert done.returncode == 0, done.stderr
    assert done.stdout == shown


class TestDocsDetachedRunner(RunnerContract):
    """The remote runner docs/plugins.md writes on the lifecycle base, with every capability."""

    step_timeout = 120.0
    kills_before_start = reattaches = times_out = defers = stops_earlier_tries = True
    start_method = "start"

    @pytest.fixture
    def runner_factory(self, tmp_path):
        return lambda: DOCS["DetachedRunner"](state_dir=str(tmp_path / "state"))

    @pytest.fixture
    def storage_spec(self, tmp_path):
        return StorageSpec("filesystem", {"base_dir": str(tmp_path / "storage")})


def test_a_stopped_detached_run_leaves_no_files(tmp_path):
    """What the docs' cleanup promises, after a kill that came during the start."""
    runner = DOCS["DetachedRunner"](state_dir=str(tmp_path / "state"))
    start = runner.start

    def start_then_kill(*args):
        handle = start(*args)
        runner.kill()
        return handle

    runner.start = start_then_kill
    request = StepRequest(
        code_location=CodeLocation(python_file=str(CONTRACT_JOB)),
        job_name="contract",
        step_key="slow",
        run_id=str(uuid.uuid4()),
        run_config={"ops": {"slow": {"config": {"seconds": 600}}}},
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path / "storage")}),
    )
    with TaskLog() as task_log:
        result = runner.run(request, run_context_for(request, task_log.logger))
    assert result.status == FAILURE and result.error.kind == STOPPED, result.error
    assert list((tmp_path / "state").iterdir()) == []


def test_a_step_that_ignores_sigterm_gets_sigkill_after_the_stop_grace(tmp_path):
    """As `docker stop`: the run is followed until nothing of its session runs, and whatever
    still runs stop_grace seconds after the SIGTERM gets SIGKILL."""
    runner = DOCS["DetachedRunner"](state_dir=str(tmp_path / "state"))
    runner.stop_grace = 2.0
    pid_file = tmp_path / "pid"
    request = StepRequest(
        code_location=CodeLocation(python_file=str(JOBS / "stubborn.py")),
        job_name="stubborn_job",
        step_key="stubborn",
        run_id=str(uuid.uuid4()),
        run_config={"ops": {"stubborn": {"config": {"pid_file": str(pid_file)}}}},
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path / "storage")}),
    )
    with TaskLog() as task_log:
        result, _ = run_and_kill_once_started(runner, request, pid_file, task_log.logger)
    assert result.status == FAILURE and result.error.kind == STOPPED, result.error
    stat = Path(f"/proc/{pid_file.read_text()}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
