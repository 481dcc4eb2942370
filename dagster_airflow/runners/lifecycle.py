"""The lifecycle of a step whose worker runs elsewhere, written once (Airflow side, no SDK import).

A container, a cloud task, a run on a Dagster deployment: a backend says how to find, start,
read, poll, stop and clean up one run of it, and ``RemoteRunner.run`` owns the rest:

1. ``prepare``: connect (a client, a login, a task definition).
2. ``find`` a run of this identity (the Airflow try, StepRequest.fingerprint / tags), left by an
   earlier process of the same try, and follow it (reattach); else ``start`` one.
3. Follow it: feed ``read_output`` into the step log, poll ``state`` with one backoff rule
   (from ``first_poll`` seconds, doubling up to ``max_poll``, back to ``first_poll`` when output
   arrived), stop it at ``timeout`` (or ``start_timeout`` while it is still starting).
4. Once it has finished, read the rest of its output (``output_ended`` or ``drain_grace``).
5. The result: the step's own, else a timeout, else ``never_reported``'s explanation.
6. ``cleanup``, always; a run interrupted in between (an exception, Airflow's timeout raised
   into ``run``) is stopped first.

Deferred (the operator's default where a triggerer runs, dagster_airflow.task.deferral), the
same lifecycle runs in three pieces: ``begin`` (1 and 2, in the worker), ``follower`` (3 and 4,
in Airflow's triggerer, the run's handle rebuilt from ``handle_to_data``'s plain data by
``handle_from_data``: never a second start) and ``resume`` (5 and 6, in the worker again, the
whole output read once more for the result). A backend gets it by implementing those two hooks
(the default takes a str or dict handle as it is).

The kill protocol is the base's: ``kill()`` may come from a signal handler in the thread that
runs ``run`` or from any other thread, before, during or after the start. It marks the runner
killed and stops the run if there is one; ``run`` checks the mark before it starts and again as
soon as ``start`` returned, so a kill during the start stops the run it started. A run is
stopped once (``stop`` is never called twice for one run).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, ClassVar

import attrs

from dagster_airflow.model import StepRequest
from dagster_airflow.runners.base import RunContext, StepRunner
from dagster_airflow.runners.follow import Follower, RunState, timeout_message
from dagster_airflow.step_log import StepLog
from dagster_airflow.step_result import (
    FAILURE,
    LOST,
    NEVER_STARTED,
    STOPPED,
    TIMEOUT,
    StepError,
    StepResult,
)

__all__ = ["DeferredRun", "KillSwitch", "RemoteRunner", "RunState"]

logger = logging.getLogger(__name__)
# A resumed deferred step reads its run's output again for the result only: the triggerer
# already wrote each line into the task log.
_REPLAY = logging.getLogger(f"{__name__}.replay")
_REPLAY.addHandler(logging.NullHandler())
_REPLAY.propagate = False

# Why a run is stopped on a kill, and when Airflow interrupts run() (its execution_timeout
# raises into it; a signal): the same, as the platform's records show it.
KILLED = "Airflow stopped the task (on_kill or execution_timeout)"
# Why a run of an earlier try of the same task is stopped as a later try starts.
SUPERSEDED = "a later Airflow try of the task started; a step runs once at a time"
# The class names of the errors the base reports (StepError.kind says which kind each is).
TIMEOUT_ERROR, NEVER_STARTED_ERROR, LOST_ERROR = "StepTimeout", "StepNeverStarted", "StepLost"


@attrs.frozen
class DeferredRun:
    """A step's run started by the worker and followed elsewhere, as plain data (a deferred
    step's trigger carries it; JSON through ``to_dict`` / ``from_dict``).

    :param handle: the runner's ``handle_to_data`` of it.
    :param started_at: when it was started or found (``time.time()``): the runner's timeout
        counts from there.
    :param stopped_by: the kind of stop (TIMEOUT, STOPPED, NEVER_STARTED) if it was stopped.
    """

    handle: Any
    started_at: float
    stopped_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeferredRun:
        return cls(data["handle"], float(data["started_at"]), data.get("stopped_by"))


class KillSwitch:
    """The kill protocol every runner shares, behind one reentrant lock (a signal handler may
    run ``kill`` in the thread that holds it).

    ``kill()`` marks the run killed and stops the handle being followed, if any; ``follow``
    names the handle once started, and stops it at once when the kill came during the start.
    Each handle is stopped once (``stop(handle, reason)`` is never called twice for it).
    """

    def __init__(self, stop: Callable[[Any, str], None], describe: Callable[[Any], str]) -> None:
        self._lock = threading.RLock()
        self._stop, self._describe = stop, describe
        self._kill_requested = False
        self._handle: Any = None
        self._stopped: Any = None  # the handle stopped last
        self.stopped_by: str | None = None  # TIMEOUT, STOPPED or NEVER_STARTED once stopped

    @property
    def killed(self) -> bool:
        """Whether a kill came for the current (or next) run."""
        return self._kill_requested

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """One run: it starts unstopped; once it ends, a kill is for the next run."""
        with self._lock:
            self._handle, self._stopped, self.stopped_by = None, None, None
        try:
            yield
        finally:
            with self._lock:
                self._handle, self._kill_requested = None, False

    def follow(self, handle: Any) -> None:
        """``handle`` is started: a kill stops it from now on (at once if one already came)."""
        with self._lock:
            self._handle = handle
            killed = self._kill_requested
        if killed:  # the kill came while the run was being started: it stops what started
            self.stop_once(handle, STOPPED, KILLED)

    def release(self) -> None:
        """Nothing is followed any more: a late kill stops nothing."""
        with self._lock:
            self._handle = None

    def kill(self) -> None:
        with self._lock:
            self._kill_requested = True
            handle = self._handle
        if handle is not None:
            self.stop_once(handle, STOPPED, KILLED)

    def stopped_elsewhere(self, handle: Any, why: str) -> None:
        """``handle`` was stopped by another process that followed it (a deferred step's
        triggerer): it is not stopped again, and the stop's kind is ``why``."""
        with self._lock:
            self._stopped, self.stopped_by = handle, why

    def stop_once(self, handle: Any, why: str, reason: str) -> None:
        with self._lock:
            if self._stopped is handle:
                return
            self._stopped, self.stopped_by = handle, why
        logger.info("Stopping %s: %s", self._describe(handle), reason)
        try:
            self._stop(handle, reason)
        except Exception as exc:  # a failed stop must not hide the outcome of the step
            logger.warning("Could not stop %s: %s", self._describe(handle), exc)


class RemoteRunner(StepRunner):
    """A runner whose steps run elsewhere. Subclasses implement ``start``, ``find``,
    ``read_output``, ``state`` and ``stop``, and may override ``prepare``, ``cleanup``,
    ``output_ended``, ``never_reported``, ``describe``, and the hooks around the whole run:
    ``session``, ``platform_error`` and ``outcome``; ``run`` and ``kill`` are the base's.

    A handle is whatever the backend uses to name its run (a container object, a task's ARN);
    the base only passes it back.
    """

    # Polling: from first_poll seconds, doubling up to max_poll (back to first_poll on output).
    # Class defaults; a backend may set them per instance from its options.
    first_poll: float = 0.05
    max_poll: float = 1.0
    # Seconds a finished run's output gets to end (output_ended) before the final read.
    drain_grace: float = 5.0
    # Whether read_output waits up to the pause for its first line (else the base sleeps).
    output_waits: ClassVar[bool] = False
    # How messages name the run ("container", "ECS task") and the start timeout's option.
    run_noun: ClassVar[str] = "run"
    start_timeout_option: ClassVar[str] = "start_timeout"
    # Whether a task may defer while the run goes on (begin, then follower in the triggerer,
    # then resume): a handle that handle_to_data turns into plain data is all it takes.
    deferrable: ClassVar[bool] = True
    # Seconds the step may run, and stay starting, before it is stopped (None: no limit).
    timeout: float | None = None
    start_timeout: float | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> RemoteRunner:
        self = super().__new__(cls)
        # Before any __init__: kill() may come at once.
        self.__switch = KillSwitch(lambda handle, reason: self.stop(handle, reason), self.describe)
        return self

    # -- what a backend fills in ----------------------------------------------------------

    def prepare(self, request: StepRequest, context: RunContext) -> None:
        """Connect before anything is looked up: a client, a login, a task definition."""

    @abstractmethod
    def find(self, request: StepRequest, context: RunContext) -> Any | None:
        """The run an earlier process of this Airflow try started (same identity), still
        followable, or None. Log that it is followed: it is what a user looks for."""

    def earlier_runs(self, request: StepRequest, context: RunContext) -> Iterable[Any]:
        """The runs that earlier Airflow tries of this task (same DAG run, task and map index)
        started and that still run: their handles, for ``stop``. A new try stops them before it
        starts its own, so two tries never write the step's outputs at once (a task cleared or
        retried while its last run went on: no triggerer held its trigger, or its worker was
        lost). Default: none looked for."""
        return ()

    @abstractmethod
    def start(self, request: StepRequest, context: RunContext) -> Any:
        """Start the worker with ``self.worker_env(request, context)``; its handle. Raise a
        RunnerError, one sentence, when the platform refuses."""

    @abstractmethod
    def read_output(self, handle: Any, wait: float, final: bool = False) -> Iterable[str]:
        """The lines the worker wrote since the last call. With ``output_waits``, wait up to
        ``wait`` seconds for the first. ``final``: the last call, once the run has finished
        (read whatever is left, by another way if the stream did not end)."""

    @abstractmethod
    def state(self, handle: Any) -> RunState:
        """The run's state now."""

    @abstractmethod
    def stop(self, handle: Any, reason: str) -> None:
        """Ask the platform to stop the run; ``reason`` is one sentence for its records. Called
        at most once per run, maybe from a signal handler or another thread; must not raise
        for a run that already ended."""

    def cleanup(self, handle: Any, result: StepResult | None, stopped: str | None) -> None:
        """After the run, always: remove what it left. ``result`` is None when ``run`` was
        interrupted; ``stopped`` the kind of stop (TIMEOUT, STOPPED, NEVER_STARTED) or None."""

    def output_ended(self, handle: Any, step_log: StepLog) -> bool:
        """Whether a finished run's output is all read (default: the step reported its end)."""
        return step_log.reported()

    def never_reported(
        self, handle: Any, state: RunState, error: StepError | None
    ) -> StepError | None:
        """Why a finished run gave no step result, as the platform tells it (an ECS stop
        reason), with ``error`` (what its output showed) as the cause; None: ``error``."""
        return None

    def describe(self, handle: Any) -> str:
        """The run as log lines name it."""
        return f"{self.run_noun} {handle}"

    def session(self, request: StepRequest, context: RunContext) -> AbstractContextManager:
        """The scope of one run, around everything else (a logging filter); default: none."""
        return contextlib.nullcontext()

    def platform_error(self, exc: Exception) -> Exception | None:
        """The RunnerError, one sentence, that a platform's own error raised during the run
        (an SDK's client error) means; None: let it through as it is."""
        return None

    def outcome(self, result: StepResult, stopped: str | None) -> StepResult:
        """The final word on the step's result, knowing the kind of stop (TIMEOUT, STOPPED,
        NEVER_STARTED or None); default: the result as the lifecycle made it."""
        return result

    @property
    def stopped(self) -> str | None:
        """The kind of stop of the current run (TIMEOUT, STOPPED, NEVER_STARTED), or None."""
        return self.__switch.stopped_by

    # -- deferral: a run followed by another process (the triggerer) --------------------------

    def handle_to_data(self, handle: Any) -> Any:
        """The run's handle as plain JSON data (a container's id, a task's ARN): a deferred step
        hands it to the triggerer and back to the resumed task, which rebuild the handle with
        ``handle_from_data``. Default: the handle itself, a str or a dict of plain data."""
        if isinstance(handle, str | dict):
            return handle
        raise TypeError(
            f"the {self.name} runner's handle {handle!r} is not plain data: implement "
            "handle_to_data and handle_from_data, or set deferrable = False on the runner."
        )

    def handle_from_data(self, data: Any, request: StepRequest, context: RunContext) -> Any:
        """The handle that ``handle_to_data`` gave, rebuilt after ``prepare`` in another
        process; it names the same run (never a new one). Default: the data itself."""
        return data

    def begin(self, request: StepRequest, context: RunContext) -> DeferredRun | StepResult:
        """Start the step in the worker, to be followed elsewhere: ``prepare``, then ``find``
        or ``start``, as ``run`` does; the run as plain data, or the step's result when a kill
        came before it started."""
        switch = self.__switch
        with self._scope(request, context):
            handle = self._find_or_start(request, context)
            if handle is None:
                return self._never_started(context)
            data = self.handle_to_data(handle)
        return DeferredRun(data, time.time(), switch.stopped_by)

    def follower(self, request: StepRequest, context: RunContext, run: DeferredRun) -> Follower:
        """The run a deferred step started, to follow poll by poll from the triggerer: it is
        rebuilt from its data after ``prepare``, never started again (a restarted triggerer
        follows the same run). ``kill`` stops it; ``stopped`` says how it was stopped."""
        self.prepare(request, context)
        handle = self._rebuilt(request, context, run)
        return Follower(
            self, self.__switch, handle, StepLog(context.log), context.log, run.started_at
        )

    def resume(self, request: StepRequest, context: RunContext, run: DeferredRun) -> StepResult:
        """Finish a deferred step in the worker once its run ended: its whole output is read
        again for the step's result (the triggerer already showed it in the task log), then
        the result and ``cleanup`` as ``run`` makes them."""
        context.log.info("The step's %s ended; reading its result", self.run_noun)
        with self.__switch.running(), self._scope(request, context):
            self.prepare(request, context)
            handle = self._rebuilt(request, context, run)
            follower = Follower(
                self, self.__switch, handle, StepLog(_REPLAY), _REPLAY, run.started_at
            )
            result = self._finish(handle, follower, context)
            return self.outcome(result, self.__switch.stopped_by)

    def _rebuilt(self, request: StepRequest, context: RunContext, run: DeferredRun) -> Any:
        handle = self.handle_from_data(run.handle, request, context)
        self.__switch.follow(handle)
        if run.stopped_by:  # stopped by the process that followed it before
            self.__switch.stopped_elsewhere(handle, run.stopped_by)
        return handle

    # -- the lifecycle -----------------------------------------------------------------------

    def run(self, request: StepRequest, context: RunContext) -> StepResult:
        with self.__switch.running(), self._scope(request, context):
            handle = self._find_or_start(request, context)
            if handle is None:
                return self.outcome(self._never_started(context), self.__switch.stopped_by)
            follower = Follower(self, self.__switch, handle, StepLog(context.log), context.log)
            result = self._finish(handle, follower, context)
            return self.outcome(result, self.__switch.stopped_by)

    def kill(self) -> None:
        """Stop the step (Airflow's on_kill, a timeout); before the start, mark it so that it
        never starts. Safe from a signal handler, from any thread, at any moment."""
        self.__switch.kill()

    @property
    def killed(self) -> bool:
        """Whether a kill came for the current (or next) run."""
        return self.__switch.killed

    @contextlib.contextmanager
    def _scope(self, request: StepRequest, context: RunContext) -> Iterator[None]:
        """The backend's session, and its platform's errors as one sentence."""
        with self.session(request, context):
            try:
                yield
            except Exception as exc:
                translated = self.platform_error(exc)
                if translated is None:
                    raise
                raise translated from exc

    def _find_or_start(self, request: StepRequest, context: RunContext) -> Any | None:
        """``prepare``, then this identity's run: found, else started; None when a kill came
        first. A kill from now on stops it."""
        switch = self.__switch
        if switch.killed:
            return None
        self.prepare(request, context)
        handle = self.find(request, context)
        if handle is None:
            self._stop_earlier_runs(request, context)
            if switch.killed:
                return None
            handle = self.start(request, context)
        switch.follow(handle)
        return handle

    def _stop_earlier_runs(self, request: StepRequest, context: RunContext) -> None:
        if request.task is None or request.task.try_number <= 1:
            return
        for handle in self.earlier_runs(request, context):
            context.log.warning(
                "Stopping %s, which an earlier try of this task started and which still runs: %s",
                self.describe(handle),
                SUPERSEDED,
            )
            self.stop(handle, SUPERSEDED)
            try:
                self.cleanup(handle, None, STOPPED)
            except Exception as exc:  # what is left must not keep this try from running
                context.log.warning("Could not clean up %s: %s", self.describe(handle), exc)

    def _finish(self, handle: Any, follower: Follower, context: RunContext) -> StepResult:
        """Follow the run to its end, its result; stopped if interrupted, cleaned up always."""
        switch = self.__switch
        result = None
        try:
            state = follower.follow()
            result = self._result(handle, state, follower.step_log)
            return result
        finally:
            if result is None:  # interrupted while following: never leave it running
                switch.stop_once(handle, STOPPED, KILLED)
            switch.release()
            try:
                self.cleanup(handle, result, switch.stopped_by)
            except Exception as exc:  # a failed cleanup must not hide the step's outcome
                context.log.warning("Could not clean up %s: %s", self.describe(handle), exc)

    def _result(self, handle: Any, state: RunState, step_log: StepLog) -> StepResult:
        result = step_log.result(state.exit_code)
        stopped = self.__switch.stopped_by
        if stopped == TIMEOUT:
            error = StepError(TIMEOUT_ERROR, timeout_message(self), cause=result.error)
            error = attrs.evolve(error, kind=TIMEOUT)
            return StepResult(FAILURE, state.exit_code, result.outputs, error, result.events)
        if result.status != FAILURE or not step_log.crashed(result):
            return result  # the step's own outcome, as every runner reports it
        kind = stopped or LOST
        explained = self.never_reported(handle, state, result.error)
        error = explained or result.error or StepError(LOST_ERROR, "the step never reported")
        return attrs.evolve(result, error=attrs.evolve(error, kind=kind))

    def _never_started(self, context: RunContext) -> StepResult:
        error = StepError(
            NEVER_STARTED_ERROR,
            f"the step was stopped before its {self.run_noun} started ({KILLED})",
            kind=NEVER_STARTED,
        )
        context.log.error("Step stopped before it started: %s", error.summary())
        return StepResult(FAILURE, None, {}, error)
