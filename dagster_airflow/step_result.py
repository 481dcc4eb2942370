"""What a step answers: the events the worker prints, its error, and the result a runner makes
of them (plain attrs classes that travel as JSON, beside the request in model.py).

The worker writes each `StepEvent` as a JSON line of its output and ends with one of the exit
codes here; a runner folds the lines and the exit code into a `StepResult` (step_log.py), which
the operator turns into the task's outcome. Nothing here imports Dagster or Airflow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

# The key that marks a worker's output line as a StepEvent rather than the step's own output.
EVENT_MARKER = "dagster_airflow_event"

# The kinds of step error a runner reports when the step itself did not report its outcome
# (StepError.kind; None for the step's own error). Written once here, used by every runner.
TIMEOUT = "timeout"  # it ran longer than the runner's timeout, and was stopped
STOPPED = "stopped"  # it was stopped: Airflow's on_kill, an execution timeout, an interruption
LOST = "lost"  # its run ended or vanished without the step's result (crash, OOM, removed)
NEVER_STARTED = "never_started"  # it was stopped, or failed, before its run started
STEP_ERROR_KINDS = (TIMEOUT, STOPPED, LOST, NEVER_STARTED)

# What a step stopped before Dagster began it says (the worker's and the subprocess runner's).
STOPPED_BEFORE_IT_RAN = (
    "the step was stopped before it ran (SIGTERM or SIGINT: a kill or a timeout)"
)


@attrs.frozen
class StepError:
    """A Dagster error as the user should read it: class, message, stack, and its cause."""

    class_name: str
    message: str
    stack: str = ""
    cause: StepError | None = None
    # One of STEP_ERROR_KINDS when a runner, not the step, says how it ended; None otherwise.
    kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {
            "class_name": self.class_name,
            "message": self.message,
            "stack": self.stack,
            "cause": self.cause.to_dict() if self.cause else None,
        }
        return data | ({"kind": self.kind} if self.kind else {})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepError:
        cause = data.get("cause")
        return cls(
            class_name=data.get("class_name", "Error"),
            message=data.get("message", ""),
            stack=data.get("stack", ""),
            cause=cls.from_dict(cause) if cause else None,
            kind=data.get("kind"),
        )

    def summary(self) -> str:
        """One line for the error and one for each cause: what a failed task's exception says."""
        text = f"{self.class_name}: {self.message.strip()}" if self.message else self.class_name
        if self.cause:
            text += f"\n  caused by {self.cause.summary()}"
        return text


@attrs.frozen
class StepEvent:
    """One event of a step, as the worker prints it: a JSON object on a line of its own."""

    event_type: str  # a Dagster event type (STEP_START, STEP_OUTPUT ...) or LOG for a log message
    message: str = ""
    step_key: str | None = None
    level: str = "INFO"
    timestamp: float = 0.0
    input_name: str | None = None
    output_name: str | None = None
    mapping_key: str | None = None  # of a dynamic output (STEP_OUTPUT, HANDLED_OUTPUT)
    uri: str | None = None
    error: StepError | None = None
    # Materializations and asset check evaluations: the asset, its partition, JSON-safe metadata.
    asset_key: str | None = None  # as Dagster writes it for users: "prefix/name"
    partition: str | None = None
    metadata: dict[str, Any] | None = None
    check_name: str | None = None
    passed: bool | None = None
    severity: str | None = None  # "ERROR" or "WARN"
    # Hook events: the hook's name (None when Dagster does not say, as for HOOK_ERRORED).
    hook_name: str | None = None
    # STEP_UP_FOR_RETRY: the seconds Dagster asks to wait before the next attempt (None: at once).
    seconds_to_wait: float | None = None
    # Attempt of the step this event belongs to (1 is the first), in the step's event log.
    attempt: int | None = None

    def to_json(self) -> str:
        data: dict[str, Any] = {EVENT_MARKER: self.event_type}
        for field in attrs.fields(StepEvent)[1:]:
            value = getattr(self, field.name)
            if value not in (None, ""):
                data[field.name] = value.to_dict() if isinstance(value, StepError) else value
        return json.dumps(data)

    @classmethod
    def from_line(cls, line: str) -> StepEvent | None:
        """The event a line holds, or None when it is the step's own output."""
        line = line.strip()
        if not (line.startswith("{") and EVENT_MARKER in line):
            return None
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            return None
        if not isinstance(data, dict) or EVENT_MARKER not in data:
            return None
        error = data.get("error")
        return cls(
            event_type=data[EVENT_MARKER],
            message=data.get("message", ""),
            step_key=data.get("step_key"),
            level=data.get("level", "INFO"),
            timestamp=data.get("timestamp", 0.0),
            input_name=data.get("input_name"),
            output_name=data.get("output_name"),
            mapping_key=data.get("mapping_key"),
            uri=data.get("uri"),
            error=StepError.from_dict(error) if error else None,
            asset_key=data.get("asset_key"),
            partition=data.get("partition"),
            metadata=data.get("metadata"),
            check_name=data.get("check_name"),
            passed=data.get("passed"),
            severity=data.get("severity"),
            hook_name=data.get("hook_name"),
            seconds_to_wait=data.get("seconds_to_wait"),
            attempt=data.get("attempt"),
        )


# How a step ended. UP_FOR_RETRY: it failed and Dagster retries it (a RetryPolicy or RetryRequested
# with retries left), so the task should fail into Airflow's next try.
SUCCESS, FAILURE, SKIPPED, UP_FOR_RETRY = "success", "failure", "skipped", "up_for_retry"

# The worker's exit codes (`dagster-airflow execute-step`). EXIT_NO_RETRY: the step failed and no
# retry can change that (a bad request or run config, or Dagster's own retry decision was final),
# so the task fails at once, whatever its Airflow retries.
EXIT_SUCCESS, EXIT_FAILURE, EXIT_NO_RETRY, EXIT_UP_FOR_RETRY = 0, 1, 2, 3


@attrs.frozen
class StepResult:
    """How a step ended, as its runner saw it."""

    status: str  # SUCCESS, FAILURE, SKIPPED or UP_FOR_RETRY
    exit_code: int | None = None
    outputs: dict[str, str] = attrs.field(factory=dict)  # output name -> URI
    error: StepError | None = None
    events: tuple[StepEvent, ...] = ()
    # UP_FOR_RETRY: Dagster's delay before the next attempt, in seconds (None: at once).
    seconds_to_wait: float | None = None

    @property
    def retryable(self) -> bool:
        """False when the step failed in a way no retry changes (the worker said so)."""
        return self.exit_code != EXIT_NO_RETRY

    @property
    def mapping_keys(self) -> dict[str, list[str]]:
        """Dynamic output name -> the mapping keys the step yielded for it, in Dagster's order."""
        keys: dict[str, list[str]] = {}
        for event in self.events:
            if event.event_type == "STEP_OUTPUT" and event.output_name and event.mapping_key:
                keys.setdefault(event.output_name, []).append(event.mapping_key)
        return keys

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCESS
