"""The contract every runner and every storage passes: subclass, provide one fixture, done.

    from dagster_airflow.testing.contracts import StorageContract

    class TestMyStorage(StorageContract):
        @pytest.fixture
        def storage(self):
            return MyStorage(bucket="test")

The built-in backends pass these same classes (tests/runners, tests/storage).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from pathlib import Path

import attrs
import pytest

from dagster_airflow.model import CodeLocation, StepRequest, TaskRef
from dagster_airflow.runners.lifecycle import DeferredRun
from dagster_airflow.step_result import FAILURE, NEVER_STARTED, STOPPED, SUCCESS, TIMEOUT
from dagster_airflow.testing.run_context import run_context_for, run_step
from dagster_airflow.testing.storage_contract import StorageContract
from dagster_airflow.testing.task_log import TaskLog

CONTRACT_JOB = Path(__file__).with_name("contract_job.py")
# The job's variable contract_job.py's produce op reads (named there too: that file is the step's
# code and imports nothing of the kit).
CONTRACT_VARIABLE = "DAGSTER_AIRFLOW_CONTRACT_PASSWORD"
SLOW_OP_SLEEPING = "slow op sleeping for"  # what contract_job.py's slow op logs before it sleeps

__all__ = ["CONTRACT_JOB", "SLOW_OP_SLEEPING", "RunnerContract", "StorageContract"]


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
    - ``defers``: a deferred step (``begin`` in the worker, ``follower`` in Airflow's triggerer,
      ``resume`` in the worker) runs once, its handle crossing as JSON, followed by a restarted
      triggerer without a second start (needs ``start_method``).
    - ``stops_earlier_tries``: the runner implements ``earlier_runs``, so a new try stops the
      run an earlier try of its task left running before it starts its own (needs ``defers``:
      the earlier try is left running the way a deferred step is).
    """

    step_timeout = 300.0  # seconds a contract step may take, start-up included
    kills_before_start = False
    start_method: str | None = None
    reattaches = False
    times_out = False
    defers = False
    stops_earlier_tries = False

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

    def test_the_jobs_variables_reach_the_step_and_are_redacted(
        self, runner_factory, code_location, storage_spec, run_id, task_log
    ):
        runner = runner_factory()
        if not runner.takes_environment:
            pytest.skip(f"the {runner.name} runner's steps read their own environment")
        secret = f"s3cr3t-{uuid.uuid4().hex}"
        request = self.request(code_location, storage_spec, run_id, "produce")
        # As the operator hands them over: the DAG's ENVIRONMENT, rendered.
        context = run_context_for(request, task_log.logger, job_env={CONTRACT_VARIABLE: secret})
        result = runner.run(request, context)
        assert result.status == SUCCESS, result.error
        assert f"{CONTRACT_VARIABLE} has {len(secret)} characters: ***" in task_log.text
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

    def test_a_deferred_step_is_followed_elsewhere_and_resumed(
        self, runner_factory, code_location, storage_spec, run_id, task_log
    ):
        if not self.defers or self.start_method is None:
            pytest.skip("the runner does not defer (defers, start_method)")
        task = TaskRef("contract_dag", "slow", f"manual__{run_id}", -1, 1)
        request = self.slow_request(code_location, storage_spec, run_id, seconds=3, task=task)
        # The worker starts it; the run crosses to the triggerer as JSON.
        began = runner_factory().begin(request, run_context_for(request, task_log.logger))
        assert isinstance(began, DeferredRun), began
        run = DeferredRun.from_dict(json.loads(json.dumps(began.to_dict())))
        # A triggerer follows it until its op runs, then restarts: a new one follows it on.
        first, second, resumed = runner_factory(), runner_factory(), runner_factory()
        starts = [self.count_starts(runner) for runner in (first, second, resumed)]
        with TaskLog() as first_log:
            follower = first.follower(request, run_context_for(request, first_log.logger), run)
            deadline = time.monotonic() + self.step_timeout
            while SLOW_OP_SLEEPING not in first_log.text and time.monotonic() < deadline:
                assert not follower.poll().finished, first_log.text[-2000:]
                time.sleep(follower.next_pause(follower.read(0.0)))
        assert SLOW_OP_SLEEPING in first_log.text
        with TaskLog() as second_log:
            context = run_context_for(request, second_log.logger)
            assert second.follower(request, context, run).follow().finished
        assert "Step 'slow' started." in second_log.text  # followed from the start
        # The worker resumes: the step's result, as run() reports it.
        result = resumed.resume(request, run_context_for(request, task_log.logger), run)
        assert result.status == SUCCESS, result.error
        assert starts == [[], [], []], "the step was started again"

    def test_a_new_try_stops_the_run_an_earlier_try_left_running(
        self, runner_factory, code_location, storage_spec, run_id, task_log
    ):
        if not (self.stops_earlier_tries and self.defers):
            pytest.skip("the runner does not stop earlier tries' runs (stops_earlier_tries)")
        task = TaskRef("contract_dag", "slow", f"manual__{run_id}", -1, 1)
        first = self.slow_request(code_location, storage_spec, run_id, task=task)
        began = runner_factory().begin(first, run_context_for(first, task_log.logger))
        assert isinstance(began, DeferredRun), began
        # The task is cleared while no triggerer follows its run: the next try runs the step,
        # and stops that run first.
        again = attrs.evolve(
            self.request(code_location, storage_spec, run_id, "slow"),
            task=attrs.evolve(task, try_number=2),
            attempt=2,
        )
        runner = runner_factory()
        stopped, stop = [], runner.stop

        def recorded(handle, reason):
            stopped.append(runner.handle_to_data(handle))
            stop(handle, reason)

        runner.stop = recorded
        with TaskLog() as again_log:
            result = runner.run(again, run_context_for(again, again_log.logger))
        assert result.status == SUCCESS, result.error
        assert stopped == [began.handle], "the next try did not stop the earlier try's run"
        assert "which an earlier try of this task started and which still runs" in again_log.text

    def test_a_deferred_steps_secret_stays_hidden_in_the_triggerers_log(
        self, runner_factory, code_location, storage_spec, run_id, task_log
    ):
        # The triggerer's masker knows none of the task's secrets (it rebuilds the runner with
        # no job variables): what it shows must come redacted from the step itself.
        runner = runner_factory()
        if not (self.defers and runner.takes_environment):
            pytest.skip("the runner does not defer, or its steps read their own environment")
        secret = f"s3cr3t-{uuid.uuid4().hex}"
        request = self.request(code_location, storage_spec, run_id, "produce")
        context = run_context_for(request, task_log.logger, job_env={CONTRACT_VARIABLE: secret})
        began = runner.begin(request, context)
        assert isinstance(began, DeferredRun), began
        run = DeferredRun.from_dict(json.loads(json.dumps(began.to_dict())))
        with TaskLog() as trigger_log:
            following = runner_factory()
            follower = following.follower(
                request, run_context_for(request, trigger_log.logger), run
            )
            assert follower.follow().finished
        assert f"{CONTRACT_VARIABLE} has {len(secret)} characters: ***" in trigger_log.text
        assert secret not in trigger_log.text
        result = runner_factory().resume(request, run_context_for(request, task_log.logger), run)
        assert result.status == SUCCESS, result.error
        assert secret not in task_log.text

    def test_a_deferred_step_times_out_in_the_triggerer(
        self, runner_factory, code_location, storage_spec, run_id, task_log
    ):
        if not (self.defers and self.times_out):
            pytest.skip("the runner does not defer or has no timeout (defers, times_out)")
        request = self.slow_request(code_location, storage_spec, run_id)
        began = runner_factory().begin(request, run_context_for(request, task_log.logger))
        run = DeferredRun.from_dict(json.loads(json.dumps(began.to_dict())))
        # The triggerer's runner has the task's options, its timeout among them.
        following = runner_factory()
        following.timeout = 3.0
        started = time.monotonic()
        follower = following.follower(request, run_context_for(request, task_log.logger), run)
        assert follower.follow().finished
        assert time.monotonic() - started < self.step_timeout
        # The worker resumes with how the triggerer stopped it: a timeout, as run() reports it.
        run = attrs.evolve(run, stopped_by=following.stopped)
        resumer = runner_factory()
        resumer.timeout = 3.0
        result = resumer.resume(request, run_context_for(request, task_log.logger), run)
        assert result.status == FAILURE
        assert result.error.kind == TIMEOUT, result.error
        assert "timeout of 3s" in result.error.message
