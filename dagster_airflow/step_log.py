"""Reads a worker's output as it comes: events become readable task-log lines, the rest is the
step's own output, and the whole folds into a StepResult. Shared by every runner."""

from __future__ import annotations

import logging
from collections import deque

from dagster_airflow.step_result import (
    FAILURE,
    SKIPPED,
    SUCCESS,
    UP_FOR_RETRY,
    StepError,
    StepEvent,
    StepResult,
)

# Dagster's bookkeeping events: kept in the event log, shown only at DEBUG in the task log.
_QUIET = {
    "RESOURCE_INIT_STARTED",
    "RESOURCE_INIT_SUCCESS",
    "LOGS_CAPTURED",
    "STEP_INPUT",
    "STEP_OUTPUT",
    "ENGINE_EVENT",
    "STEP_WORKER_STARTING",
    "STEP_WORKER_STARTED",
}
_TAIL_LINES = 20
_OUTCOMES = ("STEP_FAILURE", "STEP_SKIPPED", "STEP_SUCCESS", "STEP_UP_FOR_RETRY")
# The error of a worker whose output ended without the step's outcome (StepLog.crashed).
WORKER_EXITED = "WorkerExited"
# A step stopped by a kill or a timeout: its one line says so; a stack would make it look like a
# crash.
INTERRUPTIONS = ("DagsterExecutionInterruptedError", "KeyboardInterrupt")


def describe(event: StepEvent) -> str:
    """One readable line (more for a failure) for an event."""
    kind = event.event_type
    if kind == "STEP_START":
        return f"Step {event.step_key!r} started."
    if kind == "LOADED_INPUT" and event.uri:
        return f"Loaded input {event.input_name!r} from {event.uri}"
    if kind == "HANDLED_OUTPUT" and event.uri:
        return f"Stored output {event.output_name!r} at {event.uri}"
    if kind == "STEP_SUCCESS":
        return event.message or f"Step {event.step_key!r} succeeded."
    if kind == "STEP_FAILURE" and event.error:
        # The root cause's stack is where the user's code is; Dagster's own frames are noise.
        root = event.error
        while root.cause is not None:
            root = root.cause
        text = f"Step {event.step_key!r} failed: {event.error.summary()}"
        if root.stack and root.class_name not in INTERRUPTIONS:
            text += f"\n{root.class_name} stack trace:\n{root.stack.rstrip()}"
        return text
    if kind == "STEP_SKIPPED":
        return f"Step {event.step_key!r} skipped: {event.message}"
    if kind == "STEP_UP_FOR_RETRY":
        wait = f"in {event.seconds_to_wait:g} s" if event.seconds_to_wait else "at once"
        cause = f": {op_error(event.error).summary()}" if event.error else ""
        return f"Step {event.step_key!r} failed and Dagster retries it {wait}{cause}"
    if kind == "ASSET_MATERIALIZATION" and event.asset_key:
        partition = f", partition {event.partition!r}" if event.partition else ""
        return f"Materialized asset {event.asset_key!r}{partition}: {event.metadata or {}}"
    if kind == "ASSET_CHECK_EVALUATION" and event.check_name:
        outcome = "passed" if event.passed else f"failed (severity {event.severity})"
        return (
            f"Asset check {event.check_name!r} on {event.asset_key!r} {outcome}: "
            f"{event.metadata or {}}"
        )
    return event.message or kind


def op_error(error: StepError) -> StepError:
    """The op's own exception in a Dagster error: the root of its causes (Dagster wraps an op's
    exception in DagsterExecutionStepExecutionError, and a retry in RetryRequested)."""
    while error.cause is not None:
        error = error.cause
    return error


class StepLog:
    """Feed it a worker's lines; ask it for the StepResult once the worker has exited."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.events: list[StepEvent] = []
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)

    def feed(self, line: str) -> StepEvent | None:
        line = line.rstrip("\r\n")
        event = StepEvent.from_line(line)
        if event is None:
            if line:
                self.tail.append(line)
                self.log.info("%s", line)
            return None
        self.events.append(event)
        if event.event_type == "LOG":
            level = logging.getLevelName(event.level)
            self.log.log(level if isinstance(level, int) else logging.INFO, "%s", event.message)
        elif event.event_type in ("STEP_FAILURE", "STEP_UP_FOR_RETRY"):
            self.log.error("%s", describe(event))
        elif event.event_type in _QUIET:
            self.log.debug("%s", describe(event))
        else:
            self.log.info("%s", describe(event))
        return event

    def reported(self) -> bool:
        """Whether the step reported how it ended (success, failure, skip or retry)."""
        return any(e.event_type in _OUTCOMES for e in self.events)

    @staticmethod
    def crashed(result: StepResult) -> bool:
        """Whether ``result`` is this log's guess for a worker that never reported its outcome."""
        return result.error is not None and result.error.class_name == WORKER_EXITED

    def result(self, exit_code: int | None) -> StepResult:
        outputs = {
            e.output_name: e.uri
            for e in self.events
            # A dynamic output's many objects stay out: the XCom stays small.
            if e.event_type == "HANDLED_OUTPUT" and e.output_name and e.uri and not e.mapping_key
        }
        events = tuple(self.events)
        # The last outcome counts: a Dagster run that retries a step within itself (the graphql
        # runner's deployment) reports STEP_UP_FOR_RETRY, then the next attempt's outcome.
        outcome = next((e for e in reversed(self.events) if e.event_type in _OUTCOMES), None)
        kind = outcome.event_type if outcome else None
        if outcome is not None and kind in ("STEP_FAILURE", "STEP_UP_FOR_RETRY"):
            error = outcome.error or StepError("DagsterError", outcome.message)
            if kind == "STEP_FAILURE":
                return StepResult(FAILURE, exit_code, outputs, error, events)
            return StepResult(
                UP_FOR_RETRY, exit_code, outputs, error, events, outcome.seconds_to_wait
            )
        if kind == "STEP_SKIPPED":
            return StepResult(SKIPPED, exit_code, {}, None, events)
        if kind == "STEP_SUCCESS" and exit_code in (0, None):
            return StepResult(SUCCESS, exit_code, outputs, None, events)
        return StepResult(FAILURE, exit_code, outputs, self._crash_error(exit_code), events)

    def _crash_error(self, exit_code: int | None) -> StepError:
        if exit_code is not None and exit_code < 0:
            what = f"the step's process was stopped by signal {-exit_code}"
        elif "STEP_SUCCESS" in {e.event_type for e in self.events}:
            what = f"the worker exited with code {exit_code} after the step succeeded"
        else:
            what = f"the worker exited with code {exit_code} before the step finished"
        tail = "\n".join(self.tail)
        cause = StepError("WorkerOutput", f"last lines of its output:\n{tail}") if tail else None
        return StepError(WORKER_EXITED, what, cause=cause)
