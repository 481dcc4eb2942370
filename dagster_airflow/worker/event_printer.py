"""How the worker says what happens (Dagster side): every event of the step as a JSON line of its
output, redacted, and kept for the step's event log; Dagster's errors and ours as StepErrors."""

from __future__ import annotations

import re
import time
import traceback
from typing import Any, TextIO

import attrs

from dagster_airflow.errors import (
    ConfigurationError,
    DagsterAirflowError,
    PluginError,
    RunConfigError,
)
from dagster_airflow.redaction import Redactor
from dagster_airflow.step_result import EXIT_FAILURE, EXIT_NO_RETRY, StepError, StepEvent

# Failures of ours that no retry can fix: the task fails at once.
NOT_RETRYABLE = (ConfigurationError, PluginError, RunConfigError)
_OUTCOMES = ("STEP_SUCCESS", "STEP_SKIPPED", "STEP_FAILURE", "STEP_UP_FOR_RETRY")
_ENDS = ("STEP_SUCCESS", "STEP_SKIPPED", "STEP_FAILURE")
STOPPED_WHILE_IT_RAN = "the step was stopped while it ran (SIGTERM or SIGINT: a kill or a timeout)"


def error_from_info(info: Any) -> StepError:
    """A StepError from Dagster's SerializableErrorInfo, causes included."""
    class_name = info.cls_name or "Error"
    # Dagster's message repeats the class (`dagster._core.errors.X: text`): keep the text.
    message = re.sub(rf"^[\w.]*{re.escape(class_name)}(: |$)", "", info.message.strip())
    if class_name == "DagsterExecutionInterruptedError" and not message:
        message = STOPPED_WHILE_IT_RAN
    return StepError(
        class_name=class_name,
        message=message,
        stack="".join(info.stack),
        cause=error_from_info(info.cause) if info.cause else None,
    )


def error_from_exception(exc: BaseException) -> StepError:
    cause = exc.__cause__
    return StepError(
        class_name=type(exc).__name__,
        message=str(exc),
        stack=""
        if isinstance(exc, DagsterAirflowError)
        else "".join(traceback.format_tb(exc.__traceback__)),
        cause=error_from_exception(cause)
        if cause and not isinstance(exc, DagsterAirflowError)
        else None,
    )


class EventPrinter:
    """Prints events as JSON lines and keeps them for the step's event log.

    Every line the worker writes goes through ``emit`` or ``say``, redacted by ``redactor``: the
    event log is written from the events kept here, so it is redacted alike.
    """

    def __init__(
        self,
        stream: TextIO,
        step_key: str,
        attempt: int | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.stream = stream
        self.step_key = step_key
        self.attempt = attempt
        self.redactor = redactor or Redactor()
        self.events: list[StepEvent] = []
        # Set when the failure is one no retry can fix (see NOT_RETRYABLE).
        self.not_retryable = False

    def emit(self, event: StepEvent) -> None:
        if self.attempt is not None and event.attempt is None:
            event = attrs.evolve(event, attempt=self.attempt)
        event = self.redactor.event(event)
        self.events.append(event)
        self.stream.write(event.to_json() + "\n")
        self.stream.flush()

    def say(self, text: str) -> None:
        """A line of the worker's own that is no event (why a record could not be written)."""
        self.stream.write(self.redactor.text(text) + "\n")
        self.stream.flush()

    def fail(self, exc: BaseException, message: str) -> None:
        self.not_retryable = self.not_retryable or isinstance(exc, NOT_RETRYABLE)
        self.emit(
            StepEvent(
                "STEP_FAILURE",
                message,
                step_key=self.step_key,
                level="ERROR",
                timestamp=time.time(),
                error=error_from_exception(exc),
            )
        )

    def failed(self) -> bool:
        return any(e.event_type == "STEP_FAILURE" for e in self.events)

    def succeeded(self) -> bool:
        """Whether the step's last end was a success or a skip (a failure may follow a success:
        the step's record could not be written)."""
        ends = [e.event_type for e in self.events if e.event_type in _ENDS]
        return bool(ends) and ends[-1] != "STEP_FAILURE"

    def outcome(self) -> StepEvent | None:
        """The event that says how the step ended: its last success, skip, failure or retry."""
        return next((e for e in reversed(self.events) if e.event_type in _OUTCOMES), None)

    def failure_exit_code(self) -> int:
        """The exit code of a failure outside the step's execution (the storage, the end task)."""
        return EXIT_NO_RETRY if self.not_retryable else EXIT_FAILURE
