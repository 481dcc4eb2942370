"""Following one remote run, poll by poll (Airflow side, no SDK import).

The lifecycle's loop (dagster_airflow.runners.lifecycle) in pieces that both of its drivers
share: the worker's loop, which waits between polls in its own thread, and the triggerer's
(dagster_airflow.task.trigger), which awaits between polls so that one event loop follows many
runs. Each piece is synchronous and short: ``poll`` asks the platform once and enforces the
deadlines, ``read`` feeds the output that arrived, ``drain`` reads what a finished run left.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import attrs

from dagster_airflow.step_log import StepLog
from dagster_airflow.step_result import NEVER_STARTED, TIMEOUT


@attrs.frozen
class RunState:
    """What the platform says of a step's run at one poll.

    :param status: the platform's word for it (``running``, ``PENDING`` ...), logged as it
        changes.
    :param finished: the run has ended; only output already written remains to be read.
    :param exit_code: the worker's exit code, once finished, when the platform has one.
    :param starting: not running yet (pending, provisioning): ``start_timeout`` applies.
    :param ran: once finished, whether the worker ran at all (False: no output to wait for).
    :param detail: anything the backend wants back in ``never_reported`` (a described task).
    """

    status: str
    finished: bool = False
    exit_code: int | None = None
    starting: bool = False
    ran: bool = True
    detail: Any = None


def timeout_message(runner: Any) -> str:
    """Why a run was stopped at the runner's ``timeout``."""
    limit = f" of {runner.timeout:g}s" if runner.timeout is not None else ""
    return (
        f"the step ran longer than the {runner.name} runner's timeout{limit}, "
        f"so its {runner.run_noun} was stopped"
    )


class Follower:
    """One run followed: where the loop is between two polls.

    :param started_at: when the run started (``time.time()``): the runner's ``timeout`` and
        ``start_timeout`` count from there, in whichever process follows it.
    """

    def __init__(
        self,
        runner: Any,  # the RemoteRunner
        switch: Any,  # its KillSwitch
        handle: Any,
        step_log: StepLog,
        log: logging.Logger,
        started_at: float | None = None,
    ) -> None:
        self.runner, self.switch, self.handle = runner, switch, handle
        self.step_log, self.log = step_log, log
        elapsed = 0.0 if started_at is None else max(time.time() - started_at, 0.0)
        self._started = time.monotonic() - elapsed
        self._status: str | None = None
        self.pause = runner.first_poll

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def poll(self) -> RunState:
        """The run's state now (logged as it changes), its deadlines enforced."""
        runner, handle = self.runner, self.handle
        state = runner.state(handle)
        if state.status != self._status:
            self._status = state.status
            self.log.info("%s is %s", runner.describe(handle), state.status)
        if state.finished:
            return state
        elapsed = self.elapsed
        if runner.timeout is not None and elapsed > runner.timeout:
            if self.switch.stopped_by is None:
                self.log.error(
                    "The step ran longer than %ss; stopping its %s",
                    runner.timeout,
                    runner.run_noun,
                )
            self.switch.stop_once(handle, TIMEOUT, timeout_message(runner))
        if state.starting and runner.start_timeout is not None and elapsed > runner.start_timeout:
            reason = (
                f"the {runner.run_noun} was still {state.status} after "
                f"{runner.start_timeout:g} s ({runner.start_timeout_option})"
            )
            self.switch.stop_once(handle, NEVER_STARTED, reason)
        return state

    def read(self, wait: float, final: bool = False) -> int:
        """Feed the output that arrived (waiting up to ``wait`` s for it where the runner's
        output waits); how many lines."""
        fed = 0
        for line in self.runner.read_output(self.handle, wait, final):
            self.step_log.feed(line)
            fed += 1
        return fed

    def next_pause(self, fed: int) -> float:
        """The one backoff rule: from first_poll, doubling up to max_poll, back to first_poll
        when output arrived. Returns the pause to take now."""
        pause = self.pause
        self.pause = self.runner.first_poll if fed else min(pause * 2, self.runner.max_poll)
        return 0.0 if fed else pause

    def wait(self) -> None:
        """Read output for up to one pause (the worker's loop, between two polls)."""
        waits = self.runner.output_waits
        fed = self.read(self.pause if waits else 0.0)
        pause = self.next_pause(fed)
        if pause and not waits:
            time.sleep(pause)

    def drain(self, state: RunState) -> None:
        """Once finished: read the rest of the output (``output_ended`` or ``drain_grace``)."""
        runner = self.runner
        grace = time.monotonic() + (runner.drain_grace if state.ran else 0.0)
        self.pause = runner.first_poll
        while not runner.output_ended(self.handle, self.step_log) and time.monotonic() < grace:
            self.pause = min(self.pause, max(grace - time.monotonic(), 0))
            self.wait()
        self.read(0.0, final=True)

    def follow(self) -> RunState:
        """Follow the run until it finishes and its output is read; its last state."""
        while not (state := self.poll()).finished:
            self.wait()
        self.drain(state)
        return state
