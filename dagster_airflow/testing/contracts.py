"""The contract every runner and every storage passes: subclass, provide one fixture, done.

    from dagster_airflow.testing.contracts import StorageContract

    class TestMyStorage(StorageContract):
        @pytest.fixture
        def storage(self):
            return MyStorage(bucket="test")

The built-in backends pass these same classes (tests/runners, tests/storage).
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import logging
import os
import pickle
import threading
import time
import uuid
from pathlib import Path

import attrs
import pytest

from dagster_airflow.errors import ConfigurationError, OutputNotFoundError
from dagster_airflow.model import (
    FAILURE,
    NEVER_STARTED,
    STOPPED,
    SUCCESS,
    TIMEOUT,
    CodeLocation,
    StepRequest,
    TaskRef,
)
from dagster_airflow.testing.run_context import run_context_for, run_step
from dagster_airflow.testing.task_log import TaskLog

MIB = 1024 * 1024
CONTRACT_JOB = Path(__file__).with_name("contract_job.py")
SLOW_OP_SLEEPING = "slow op sleeping for"  # what contract_job.py's slow op logs before it sleeps


class StorageContract:
    """What an IntermediateStorage must do. Provide a ``storage`` fixture (a fresh prefix).

    A storage that streams (its own ``open_write`` and ``open_read``, as the built-in ones)
    sets ``holds_at_most`` to the bytes of an object it holds in memory at once, whatever the
    object's size; the contract then checks it on an object larger than that. None (the
    default, for a storage made of ``put_bytes`` / ``get_bytes``, which holds objects whole):
    not checked.
    """

    holds_at_most: int | None = None

    @pytest.fixture
    def run_id(self) -> str:
        return str(uuid.uuid4())

    @pytest.mark.parametrize(
        "value",
        [
            "text",
            b"\x00bytes\xff",
            12345678901234567890,
            3.25,
            None,
            {"nested": [1, (2, 3), {"set": {4, 5}}]},
            datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC),
            decimal.Decimal("1.10"),
        ],
        ids=["str", "bytes", "int", "float", "none", "nested", "datetime", "decimal"],
    )
    def test_round_trip_of_python_values(self, storage, run_id, value):
        key = storage.key(run_id, "step", "result")
        with storage.open_write(key) as stream:
            pickle.dump(value, stream)
        with storage.open_read(key) as stream:
            assert pickle.load(stream) == value

    def test_layout_is_run_then_step_then_output(self, storage, run_id):
        key = storage.key(run_id, "count_letters", "result")
        assert key == f"{run_id}/count_letters/result"
        storage.put_bytes(key, b"x")
        assert storage.uri(key).endswith(f"{run_id}/count_letters/result")

    def test_missing_key_raises_output_not_found_naming_the_uri(self, storage, run_id):
        key = storage.key(run_id, "step", "missing")
        assert not storage.exists(key)
        with pytest.raises(OutputNotFoundError) as caught:
            storage.get_bytes(key)
        assert storage.uri(key) in str(caught.value)

    def test_overwrite_replaces_the_whole_object(self, storage, run_id):
        key = storage.key(run_id, "step", "result")
        storage.put_bytes(key, b"a much longer first attempt")
        storage.put_bytes(key, b"retry")
        assert storage.get_bytes(key) == b"retry"

    def test_a_failed_write_commits_nothing(self, storage, run_id):
        key = storage.key(run_id, "step", "result")
        with pytest.raises(RuntimeError), storage.open_write(key) as stream:
            stream.write(b"half of an obj")
            raise RuntimeError("the writer died")
        assert not storage.exists(key)
        assert list(storage.list(run_id)) == []

    def test_a_failed_rewrite_keeps_the_previous_object(self, storage, run_id):
        key = storage.key(run_id, "step", "result")
        storage.put_bytes(key, b"first")
        with pytest.raises(RuntimeError), storage.open_write(key) as stream:
            stream.write(b"second, half")
            raise RuntimeError("the writer died")
        assert storage.get_bytes(key) == b"first"

    def test_listing_a_runs_outputs(self, storage, run_id):
        for step, name in [("b", "result"), ("a", "result"), ("a", "events.jsonl")]:
            storage.put_bytes(storage.key(run_id, step, name), b"x")
        storage.put_bytes(storage.key(str(uuid.uuid4()), "a", "result"), b"other run")
        assert list(storage.list(run_id)) == [
            f"{run_id}/a/events.jsonl",
            f"{run_id}/a/result",
            f"{run_id}/b/result",
        ]
        assert list(storage.list(f"{run_id}/a")) == [
            f"{run_id}/a/events.jsonl",
            f"{run_id}/a/result",
        ]

    def test_stat_gives_the_size_and_when_it_was_written(self, storage, run_id):
        key = storage.key(run_id, "step", "result")
        before = time.time()
        storage.put_bytes(key, b"x" * 1234)
        after = time.time()
        stat = storage.stat(key)
        assert stat.size == 1234
        # Servers stamp objects to the second (S3's Last-Modified), and their clock is the
        # machine's here: within a couple of seconds of the write.
        assert before - 2 <= stat.modified <= after + 2
        storage.put_bytes(key, b"")
        assert storage.stat(key).size == 0

    def test_stat_of_a_missing_key_raises_output_not_found_naming_the_uri(self, storage, run_id):
        key = storage.key(run_id, "step", "missing")
        with pytest.raises(OutputNotFoundError) as caught:
            storage.stat(key)
        assert storage.uri(key) in str(caught.value)

    @pytest.mark.parametrize(
        "key",
        [
            "../escaped_run/step/result",
            "run/../../escaped/result",
            "/absolute/step/result",
            "run//result",
            "run/./result",
            "run/step/result\n",
            "run\x00/step/result",
            "run\\..\\result",
            "",
        ],
    )
    def test_a_key_that_could_leave_the_storage_is_refused(self, storage, key):
        uses = [storage.uri, storage.exists, storage.get_bytes, lambda k: storage.put_bytes(k, b"")]
        for use in uses:
            with pytest.raises(ConfigurationError, match="storage key"):
                use(key)

    @pytest.mark.parametrize("run_id", ["../escaped_run", "..", "a\nb"])
    def test_a_run_id_that_could_leave_the_storage_is_refused(self, storage, run_id):
        with pytest.raises(ConfigurationError, match="storage key"):
            storage.key(run_id, "step", "result")
        with pytest.raises(ConfigurationError, match="storage key"):
            storage.list(run_id)

    def test_empty_object(self, storage, run_id):
        key = storage.key(run_id, "step", "empty")
        storage.put_bytes(key, b"")
        assert storage.exists(key)
        assert storage.get_bytes(key) == b""

    # -- the streams: what the worker pickles outputs into and unpickles inputs from ------------

    def test_the_streams_and_the_bytes_methods_see_the_same_objects(self, storage, run_id):
        data = os.urandom(3 * MIB + 17)
        by_bytes, by_stream = storage.key(run_id, "a", "result"), storage.key(run_id, "b", "result")
        storage.put_bytes(by_bytes, data)
        with storage.open_read(by_bytes) as stream:
            assert _read_in_pieces(stream, 65_537) == data
        with storage.open_write(by_stream) as stream:
            for start in range(0, len(data), 100_003):
                stream.write(data[start : start + 100_003])
        assert storage.get_bytes(by_stream) == data
        assert storage.stat(by_stream).size == len(data)

    def test_a_large_value_is_pickled_into_a_stream_and_unpickled_from_one(self, storage, run_id):
        # Larger than a part or chunk of any built-in storage (S3 and GCS: 8 MiB): the pickle's
        # one large write and the unpickler's one large read go through in pieces.
        value = {"payload": os.urandom(17 * MIB + 5), "small": [1, "two"]}
        key = storage.key(run_id, "step", "result")
        with storage.open_write(key) as stream:
            pickle.dump(value, stream, protocol=pickle.HIGHEST_PROTOCOL)
        with storage.open_read(key) as stream:
            assert pickle.load(stream) == value

    def test_a_key_that_could_leave_the_storage_is_refused_by_the_streams(self, storage):
        for open_stream in (storage.open_write, storage.open_read):
            with (
                pytest.raises(ConfigurationError, match="storage key"),
                open_stream("../escaped_run/step/result"),
            ):
                pass

    def test_a_stream_holds_a_bounded_part_of_an_object(self, storage, run_id):
        if self.holds_at_most is None:
            pytest.skip("holds_at_most is not set: the storage may hold objects whole")
        import tracemalloc

        size = 2 * self.holds_at_most + 16 * MIB
        value = os.urandom(MIB) * (size // MIB)
        key = storage.key(run_id, "step", "result")
        storage.exists(key)  # the client is made before measuring
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            with storage.open_write(key) as stream:
                pickle.dump(value, stream, protocol=pickle.HIGHEST_PROTOCOL)
            written = tracemalloc.get_traced_memory()[1] - base
            digest = hashlib.sha256(value).digest()
            del value
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            with storage.open_read(key) as stream:
                loaded = pickle.load(stream)
            read = tracemalloc.get_traced_memory()[1] - base - len(loaded)  # less the value
        finally:
            tracemalloc.stop()
        assert hashlib.sha256(loaded).digest() == digest
        assert written <= self.holds_at_most, f"held {written / MIB:.0f} MiB writing"
        assert read <= self.holds_at_most, f"held {read / MIB:.0f} MiB reading"


def _read_in_pieces(stream, size: int) -> bytes:
    pieces = []
    while piece := stream.read(size):
        pieces.append(piece)
    return b"".join(pieces)


class RunnerContract:
    """What a StepRunner must do with real steps of a small job.

    Provide a ``runner_factory`` fixture (a callable returning a freshly configured runner) and a
    ``storage_spec`` fixture (a StorageSpec of a storage its steps can reach). The job is
    ``contract_job.py`` beside this file; a runner whose steps see another file system overrides
    the ``code_location`` fixture. The runner logs to ``task_log.logger``, and the checks read
    ``task_log``, never pytest's caplog (see task_log.py for why).

    Capability flags turn on the tests of what a runner supports (RemoteRunner-based runners
    support all of them: set each to True):

    - ``kills_before_start``: a kill before ``run`` means its step never starts.
    - ``start_method``: the name of the method that starts the step (``"start"`` on a
      RemoteRunner); a kill that arrives just as it returned stops what it started.
    - ``reattaches``: a second runner of the same Airflow try follows the first one's run
      instead of starting another (``start_method`` is not called again).
    - ``times_out``: setting the runner's ``timeout`` attribute (seconds) stops a longer step
      with a StepError of kind ``timeout``.
    """

    step_timeout = 300.0  # seconds a contract step may take, start-up included
    kills_before_start = False
    start_method: str | None = None
    reattaches = False
    times_out = False

    @pytest.fixture
    def code_location(self) -> CodeLocation:
        return CodeLocation(python_file=str(CONTRACT_JOB))

    @pytest.fixture
    def run_id(self) -> str:
        return str(uuid.uuid4())

    @pytest.fixture
    def task_log(self):
        with TaskLog() as task_log:
            yield task_log

    def request(self, code_location, storage_spec, run_id, step_key, run_config=None):
        return StepRequest(
            code_location=code_location,
            job_name="contract",
            step_key=step_key,
            run_id=run_id,
            run_config=run_config or {"ops": {"slow": {"config": {"seconds": 0}}}},
            storage=storage_spec,
        )

    def test_a_step_succeeds_and_its_downstream_reads_its_output(
        self, runner_factory, code_location, storage_spec, run_id, task_log
    ):
        log = task_log.logger
        first = run_step(
            runner_factory(), self.request(code_location, storage_spec, run_id, "produce"), log
        )
        assert first.status == SUCCESS, first.error
        assert set(first.outputs) == {"result"}
        assert first.outputs["result"].endswith(f"{run_id}/produce/result")

        second = run_step(
            runner_factory(), self.request(code_location, storage_spec, run_id, "consume"), log
        )
        assert second.status == SUCCESS, second.error
        assert "consumed 21 * 2" in task_log.text
        assert "Loaded input 'value' from" in task_log.text

    def test_a_failing_step_reports_the_ops_error(
        self, runner_factory, code_location, storage_spec, run_id, task_log
    ):
        result = run_step(
            runner_factory(),
            self.request(code_location, storage_spec, run_id, "fail"),
            task_log.logger,
        )
        assert result.status == FAILURE
        assert "ValueError: contract failure 7" in result.error.summary()
        assert "ValueError: contract failure 7" in task_log.text

    def test_kill_before_run_does_nothing(self, runner_factory):
        runner_factory().kill()

    def test_kill_stops_a_running_step(
        self, runner_factory, code_location, storage_spec, run_id, task_log
    ):
        runner = runner_factory()
        request = self.request(
            code_location,
            storage_spec,
            run_id,
            "slow",
            {"ops": {"slow": {"config": {"seconds": 600}}}},
        )
        results = []
        thread = threading.Thread(
            target=lambda: results.append(
                runner.run(request, run_context_for(request, task_log.logger))
            )
        )
        started = time.monotonic()
        thread.start()
        # Once the op is running (its log line reached the task log), stop it as Airflow's
        # on_kill would.
        assert task_log.wait_for(SLOW_OP_SLEEPING, self.step_timeout / 2), (
            "the slow op's log line did not reach the task log while the step ran"
        )
        runner.kill()
        thread.join(self.step_timeout)
        assert not thread.is_alive(), "kill() did not end the step"
        assert results and results[0].status == FAILURE
        assert time.monotonic() - started < self.step_timeout

    def slow_request(self, code_location, storage_spec, run_id, seconds=600, task=None):
        request = self.request(
            code_location,
            storage_spec,
            run_id,
            "slow",
            {"ops": {"slow": {"config": {"seconds": seconds}}}},
        )
        return attrs.evolve(request, task=task)

    def count_starts(self, runner, also=None):
        """Wrap the runner's start method: the list of its calls, and ``also`` after each."""
        calls = []
        start = getattr(runner, self.start_method)

        def counted(*args, **kwargs):
            handle = start(*args, **kwargs)
            calls.append(handle)
            if also is not None:
                also()
            return handle

        setattr(runner, self.start_method, counted)
        return calls

    def test_a_secret_never_reaches_the_task_log(
        self, runner_factory, code_location, storage_spec, run_id
    ):
        secret = f"s3cr3t-{uuid.uuid4().hex}"
        request = self.request(code_location, storage_spec, run_id, "produce")
        with TaskLog(level=logging.DEBUG) as task_log:
            result = runner_factory().run(
                request,
                run_context_for(
                    request, task_log.logger, {"DAGSTER_AIRFLOW_CONTRACT_SECRET_KEY": secret}
                ),
            )
        assert result.status == SUCCESS, result.error
        assert task_log.records, "the runner wrote nothing to the task log"
        assert secret not in task_log.text

    def test_kill_before_start_starts_nothing(
        self, runner_factory, code_location, storage_spec, run_id, task_log
    ):
        if not self.kills_before_start:
            pytest.skip("the runner does not say it honours a kill before its start")
        runner = runner_factory()
        calls = self.count_starts(runner) if self.start_method else []
        runner.kill()
        started = time.monotonic()
        result = run_step(
            runner, self.slow_request(code_location, storage_spec, run_id), task_log.logger
        )
        assert result.status == FAILURE
        assert result.error.kind == NEVER_STARTED, result.error
        assert SLOW_OP_SLEEPING not in task_log.text
        assert calls == []
        assert time.monotonic() - started < self.step_timeout / 2

    def test_kill_during_start_stops_what_it_started(
        self, runner_factory, code_location, storage_spec, run_id, task_log
    ):
        if self.start_method is None:
            pytest.skip("the runner names no start method (start_method)")
        runner = runner_factory()
        # As a kill (a signal handler, another thread) that comes when the platform has
        # accepted the start but the runner has not yet noted what it started.
        calls = self.count_starts(runner, also=runner.kill)
        started = time.monotonic()
        result = run_step(
            runner, self.slow_request(code_location, storage_spec, run_id), task_log.logger
        )
        assert len(calls) == 1
        assert result.status == FAILURE
        assert result.error.kind in (STOPPED, None), result.error
        # The 600 s step ended: it was stopped, not waited for.
        assert time.monotonic() - started < self.step_timeout

    def test_a_second_runner_of_the_same_try_follows_the_first(
        self, runner_factory, code_location, storage_spec, run_id, task_log
    ):
        if not self.reattaches:
            pytest.skip("the runner does not reattach (reattaches)")
        task = TaskRef("contract_dag", "slow", f"manual__{run_id}", -1, 1)
        request = self.slow_request(code_location, storage_spec, run_id, seconds=4, task=task)
        first, second = runner_factory(), runner_factory()
        second_starts = self.count_starts(second)
        results = []
        thread = threading.Thread(
            target=lambda: results.append(
                first.run(request, run_context_for(request, task_log.logger))
            )
        )
        thread.start()
        assert task_log.wait_for(SLOW_OP_SLEEPING, self.step_timeout / 2)
        # As after the Airflow worker died and the same try runs again.
        with TaskLog() as second_log:
            followed = second.run(request, run_context_for(request, second_log.logger))
        thread.join(self.step_timeout)
        assert second_starts == [], "the second runner started the step again"
        assert followed.status == SUCCESS, followed.error
        assert results and results[0].status == SUCCESS, results[0].error
        assert SLOW_OP_SLEEPING in second_log.text  # followed from the start of its output

    def test_timeout_stops_the_step(
        self, runner_factory, code_location, storage_spec, run_id, task_log
    ):
        if not self.times_out:
            pytest.skip("the runner has no timeout (times_out)")
        runner = runner_factory()
        runner.timeout = 3.0
        started = time.monotonic()
        result = run_step(
            runner, self.slow_request(code_location, storage_spec, run_id), task_log.logger
        )
        assert result.status == FAILURE
        assert result.error.kind == TIMEOUT, result.error
        assert result.error.class_name == "StepTimeout"
        assert "timeout of 3s" in result.error.message
        assert time.monotonic() - started < self.step_timeout
