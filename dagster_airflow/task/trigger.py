"""The trigger of a deferred step: follows a remote runner's run in Airflow's triggerer.

Airflow side. The worker started the run (``RemoteRunner.begin``) and deferred; this trigger
rebuilds the same runner from the plugin registry with the same options, rebuilds the run's
handle from its data (``RemoteRunner.follower``: never a second start, so a restarted triggerer
follows the same run), polls it with the runner's backoff and feeds its output into the
trigger's log (Airflow 3 shows it in the task's log). When the run has ended it fires one event
and the task resumes in a worker (``DagsterOperator.execute_complete``) to read the result.

Stopping: the task's ``execution_timeout`` is enforced here (Airflow 3.3 does not apply it to a
deferred task) and a task marked failed, succeeded or cleared stops the run (``on_kill``); a
triggerer that restarts or hands the trigger to another triggerer stops nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from dagster_airflow.model import RunnerSpec, StepRequest
from dagster_airflow.runners.lifecycle import DeferredRun, RemoteRunner

# The key of the event that says the trigger stopped the run at the task's execution_timeout.
TIMED_OUT = "execution_timeout"
# The key of the event that says the trigger could not follow the run (the task follows it).
FAILED = "trigger_error"
# Seconds after the start before the event fires. Airflow 3.3 fails a task whose resumed try
# is running before the scheduler has taken in the executor's report of the deferring process
# (apache/airflow#72716, seen here under load: the report came 5 s after the deferral); a run
# that ends at once gives the executor that time first.
MIN_DEFERRED_SECONDS = 10.0


def seconds_before_firing(started_at: float, now: float) -> float:
    """How long the trigger of a run started at ``started_at`` still waits before it fires.

    ``airflow dags test`` runs the trigger in its own process, right after the task deferred,
    with no scheduler and no executor: there is no race to keep out of, and it fires at once.
    """
    from airflow.sdk.execution_time import supervisor, task_runner

    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    if isinstance(comms, supervisor.InProcessSupervisorComms):
        return 0.0
    return max(started_at + MIN_DEFERRED_SECONDS - now, 0.0)


class RemoteStepTrigger(BaseTrigger):
    """Follows one deferred step's run.

    :param runner: the task's runner, ``{"name": ..., **options}`` as the task rendered it.
    :param request: the step's StepRequest, as JSON.
    :param run: the run as ``DeferredRun.to_dict()`` gives it.
    :param deadline: when the task's execution_timeout ends (``time.time()``), or None.
    """

    def __init__(
        self,
        runner: dict[str, Any],
        request: str,
        run: dict[str, Any],
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.runner_spec, self.request_json, self.run_data = runner, request, run
        self.deadline = deadline
        self._runner: RemoteRunner | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {
            "runner": self.runner_spec,
            "request": self.request_json,
            "run": self.run_data,
            "deadline": self.deadline,
        }
        return f"{__name__}.{type(self).__name__}", kwargs

    def _build(self) -> tuple[RemoteRunner, StepRequest, Any]:
        from dagster_airflow.plugins.manager import get_plugins
        from dagster_airflow.task.context import outside_task

        spec = RunnerSpec.from_value(self.runner_spec)
        runner = get_plugins().runner(spec.name).create(spec.options)
        request = StepRequest.from_json(self.request_json)
        return runner, request, outside_task(request, self.log, {})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        run = DeferredRun.from_dict(self.run_data)
        timed_out, error = False, None
        runner, request, context = await asyncio.to_thread(self._build)
        try:
            with runner.session(request, context):
                follower = await asyncio.to_thread(runner.follower, request, context, run)
                self._runner = runner  # what on_kill stops from now on
                state = await asyncio.to_thread(follower.poll)
                while not state.finished:
                    if self.deadline is not None and time.time() > self.deadline and not timed_out:
                        timed_out = True
                        self.log.error(
                            "The task ran longer than its execution_timeout; stopping its %s",
                            runner.run_noun,
                        )
                        await asyncio.to_thread(runner.kill)
                    fed = await asyncio.to_thread(follower.read, 0.0)
                    await asyncio.sleep(follower.next_pause(fed))
                    state = await asyncio.to_thread(follower.poll)
                await asyncio.to_thread(follower.drain, state)
        except Exception as exc:  # the worker follows it instead: never leave a run unread
            translated = runner.platform_error(exc) or exc
            error = str(translated)
            self.log.warning("Could not follow the step in the triggerer: %s", error)
        wait = seconds_before_firing(run.started_at, time.time())
        if wait:
            self.log.info(
                "The step ended within %.0f s of its start: the trigger fires in %.1f s, once the "
                "scheduler has taken in the deferral (apache/airflow#72716)",
                MIN_DEFERRED_SECONDS,
                wait,
            )
            await asyncio.sleep(wait)
        stopped = runner.stopped or run.stopped_by
        finished = DeferredRun(run.handle, run.started_at, stopped)
        yield TriggerEvent({"run": finished.to_dict(), TIMED_OUT: timed_out, FAILED: error})

    async def on_kill(self) -> None:
        """The task was marked failed or succeeded, or cleared: stop its run (Airflow 3.3 and
        later call this for a user's action only, never for a triggerer's restart)."""
        runner = self._runner
        if runner is None or runner.stopped is None:
            await asyncio.to_thread(self.stop, runner)

    def stop(self, runner: RemoteRunner | None = None) -> None:
        """Stop the run: through ``runner`` if this trigger follows it, else through a runner
        rebuilt from the trigger's arguments (killed before run() rebuilt it, or never run:
        dagster_airflow.task.unheld_trigger)."""
        if runner is None:
            runner, request, context = self._build()
            runner.follower(request, context, DeferredRun.from_dict(self.run_data))
        self.log.info("The task was stopped by a user: stopping its %s", runner.run_noun)
        runner.kill()
