"""The lifecycle base's kill protocol from a real signal handler, as Airflow calls on_kill: in the
thread that runs ``run``, at whatever point it was. The runner is the one docs/plugins.md writes
on the base (a detached local process per step)."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

from dagster_airflow.model import CodeLocation, StepRequest, StorageSpec
from dagster_airflow.runners.streams import LineStream, decode_lines
from dagster_airflow.step_result import FAILURE, NEVER_STARTED, STOPPED
from dagster_airflow.testing import CONTRACT_JOB, TaskLog
from dagster_airflow.testing.run_context import run_context_for
from tests.plugins.test_docs_plugins import DOCS


@pytest.mark.parametrize("delay", [0.001, 0.05, 0.5, 3.0])
def test_a_kill_from_a_signal_handler_at_any_moment_stops_the_step(tmp_path, delay):
    runner = DOCS["DetachedRunner"](state_dir=str(tmp_path / "state"))
    request = StepRequest(
        code_location=CodeLocation(python_file=str(CONTRACT_JOB)),
        job_name="contract",
        step_key="slow",
        run_id=str(uuid.uuid4()),
        run_config={"ops": {"slow": {"config": {"seconds": 600}}}},
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path / "storage")}),
    )
    started = []
    start = runner.start

    def noting_start(*args):
        run = start(*args)
        started.append(run)
        return run

    runner.start = noting_start
    previous = signal.signal(signal.SIGALRM, lambda *_: runner.kill())
    signal.setitimer(signal.ITIMER_REAL, delay)
    try:
        began = time.monotonic()
        with TaskLog() as task_log:
            result = runner.run(request, run_context_for(request, task_log.logger))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - began < 60, "the 600 s step was not stopped"
    assert result.status == FAILURE
    assert result.error.kind in (NEVER_STARTED, STOPPED, None), result.error
    if started:  # nothing it started runs on
        pid = started[0].process.pid
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"the step's process group {pid} still runs")
    else:
        assert result.error.kind == NEVER_STARTED


def test_a_line_stream_reassembles_lines_and_utf8_split_anywhere():
    text = "première ligne\nzweite Zeile\nlast, no newline"
    data = text.encode()
    chunks = [data[i : i + 3] for i in range(0, len(data), 3)]
    assert list(decode_lines(chunks)) == text.split("\n")
    stream = LineStream(iter(chunks))
    lines = []
    deadline = time.monotonic() + 5
    while not stream.ended and time.monotonic() < deadline:
        lines += stream.read(0.1)
    assert lines == text.split("\n") and stream.count == 3
