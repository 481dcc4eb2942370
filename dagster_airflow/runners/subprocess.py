"""Subprocess runner: each step in a fresh local Python process (the local testing mode)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import Any

import attrs

from dagster_airflow.errors import RunnerError
from dagster_airflow.model import REQUEST_ENV_VAR, StepRequest
from dagster_airflow.options import Configured, OptionFields
from dagster_airflow.plugins import hookimpl
from dagster_airflow.reaper import die_with_parent_preexec
from dagster_airflow.runners.base import RunContext, StepRunner
from dagster_airflow.runners.lifecycle import KILLED, KillSwitch
from dagster_airflow.step_log import StepLog
from dagster_airflow.step_result import (
    FAILURE,
    NEVER_STARTED,
    STOPPED,
    STOPPED_BEFORE_IT_RAN,
    StepError,
    StepResult,
)

# Airflow's own configuration and secrets: a step runs user code, which gets none of them.
AIRFLOW_ENV_PREFIXES = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")
# Seconds the runner gives the step's reaper, after its kill_timeout, to SIGKILL the step and
# end what the step left, before it SIGKILLs the reaper itself.
REAPER_GRACE = 5.0


def step_environment(
    base: Mapping[str, str], extra: Mapping[str, str], worker: Mapping[str, str]
) -> dict[str, str]:
    """The machine's environment less Airflow's configuration, connections and variables, plus
    the runner's ``env`` option and the worker's request and storage credentials."""
    env = {k: v for k, v in base.items() if not k.startswith(AIRFLOW_ENV_PREFIXES)}
    env.update(extra)
    env.update(worker)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def server_environment(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """A step server's environment: a step's, without any request, credentials or Airflow
    task context (each step gets its own from its task)."""
    env = step_environment(base, extra, {})
    return {k: v for k, v in env.items() if not k.startswith(("AIRFLOW_CTX_", REQUEST_ENV_VAR))}


_field = OptionFields("the subprocess runner")


def _boolean(option: str):
    def convert(value):
        if not isinstance(value, bool):
            raise _field.error(option, value, "true or false", f"write it as {option}=false")
        return value

    return convert


@attrs.frozen
class SubprocessOptions:
    python: str | None = _field.string("python", default=None, example="/opt/venv/bin/python")
    env: Mapping[str, str] = _field.env_map("env", example="{MY_SETTING: value}")
    working_dir: str | None = _field.string("working_dir", default=None, example="/opt/project")
    kill_timeout: float = _field.number("kill_timeout", default=10.0, example="30")
    warm: bool = _field.field(_boolean("warm"), default=True)
    idle_timeout: float = _field.number("idle_timeout", default=600.0, inclusive=True)
    runtime_dir: str | None = _field.string("runtime_dir", default=None, example="/run/me/da")


class SubprocessRunner(Configured, StepRunner):
    """Runs ``python -m dagster_airflow execute-step`` in its own process group.

    Options: ``python`` (the interpreter with Dagster and the job's code; default: Airflow's
    own), ``env`` (extra environment variables), ``working_dir``, ``kill_timeout`` (seconds
    between SIGTERM and SIGKILL), ``warm`` (fork the step from a step server that has Dagster
    and the code location loaded; default true), ``idle_timeout`` (seconds a step server waits
    for a step before it exits; 0: never), ``runtime_dir`` (where step servers listen; default
    $DAGSTER_AIRFLOW_RUNTIME_DIR, $XDG_RUNTIME_DIR/dagster-airflow or /tmp/dagster-airflow-UID).
    See docs/step-server.md.

    The step gets the machine's environment without Airflow's configuration and secrets
    (``AIRFLOW__*``, ``AIRFLOW_CONN_*``, ``AIRFLOW_VAR_*``). On Linux it runs below a reaper
    (runners/reaper.py) that ends every process the step started when the step ends, and
    ends the step when the Airflow task process dies; elsewhere the step is its own process
    group, killed as one.
    """

    name = "subprocess"
    options_class = SubprocessOptions
    default_storage = "filesystem"

    def configure(self) -> None:
        self.python = self.options.python or sys.executable
        self.warm = self.options.warm and sys.platform == "linux"
        self._process: subprocess.Popen[str] | None = None
        self._step_log: StepLog | None = None
        self._reading = False
        # The lifecycle's kill protocol; what it follows is, in turn, the step server's client,
        # the warm step, or the fresh process.
        self._switch = KillSwitch(self._stop, _describe)

    def command(self) -> list[str]:
        return [self.python, "-m", "dagster_airflow", "execute-step"]

    def _reaped(self) -> bool:
        return sys.platform == "linux"

    def _process_command(self) -> list[str]:
        """The step's command, below its reaper where there is one."""
        if not self._reaped():
            return self.command()
        reaper = [self.python, "-m", "dagster_airflow.reaper"]
        return [*reaper, "--kill-timeout", str(self.kill_timeout), "--", *self.command()]

    def run(self, request: StepRequest, context: RunContext) -> StepResult:
        with self._switch.running():
            return self._run_step(request, context, context.log)

    def _run_step(
        self, request: StepRequest, context: RunContext, log: logging.Logger
    ) -> StepResult:
        if self._switch.killed:  # killed before it started: start nothing
            return self._stopped_before_it_ran(log)
        worker = self.worker_env(request, context, self.env)
        env = step_environment(os.environ, self.env, worker)
        if self.warm:
            from dagster_airflow.step_server.client import StepCancelled, StepServerUnavailable

            try:
                return self._run_warm(request, env, log)
            except StepCancelled:
                return self._stopped_before_it_ran(log)
            except StepServerUnavailable as exc:
                if self._switch.killed:
                    return self._stopped_before_it_ran(log)
                log.warning(
                    "Step server unavailable (%s); running the step in a fresh process.", exc
                )
        log.info("Starting %s", " ".join(self.command()))
        self._step_log = StepLog(log)
        self._process = process = self._start_process(env)
        self._switch.follow(process)  # a kill during the start stops it now
        log.info("Step process %s started", process.pid)
        assert process.stdout is not None
        self._reading, read = True, False
        try:
            for line in process.stdout:
                self._step_log.feed(line)
            read = True
        finally:
            self._reading = False
            if not read:  # interrupted (Airflow's execution_timeout): never leave it running
                self._switch.stop_once(process, STOPPED, KILLED)
            self._switch.release()
        return self._step_log.result(process.wait())

    def _start_process(self, env: Mapping[str, str]) -> subprocess.Popen[str]:
        """The step's process (its reaper on Linux), started: its own process group, dying with
        this one."""
        try:
            return subprocess.Popen(
                self._process_command(),
                env=env,
                cwd=self.working_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                start_new_session=True,  # its own process group, so kill() stops all of it
                # A retry never runs beside an orphan: the reaper ends the step (and what it
                # started) when this process dies, even by SIGKILL.
                preexec_fn=die_with_parent_preexec(os.getpid()) if self._reaped() else None,
            )
        except OSError as exc:
            raise RunnerError(
                f"cannot start the step's Python {self.python!r}: {exc}; set the subprocess "
                "runner's 'python' option to an interpreter with dagster-on-airflow[dagster]."
            ) from exc

    def _run_warm(self, request: StepRequest, env: dict[str, str], log: logging.Logger):
        from dagster_airflow.step_server.client import StepServerClient

        cwd = self.working_dir or os.getcwd()
        client = StepServerClient(
            python=self.python,
            location=request.code_location,
            cwd=cwd,
            env_option=self.env,
            server_env=server_environment(os.environ, self.env),
            directory=self.runtime_dir,
            idle_timeout=self.idle_timeout,
        )
        self._switch.follow(client)  # a kill cancels the wait for the server
        warm_step = client.open_step(log)
        self._switch.follow(warm_step)  # from here a kill stops the step
        ran = False
        try:
            step_log = StepLog(log)
            code = warm_step.run(env, cwd, self.kill_timeout, step_log.feed, log)
            ran = True
        finally:
            if not ran:  # interrupted: never leave it running
                self._switch.stop_once(warm_step, STOPPED, KILLED)
            self._switch.release()
        return step_log.result(code)

    @staticmethod
    def _stopped_before_it_ran(log: logging.Logger) -> StepResult:
        error = StepError("KeyboardInterrupt", STOPPED_BEFORE_IT_RAN, kind=NEVER_STARTED)
        log.error("Step stopped before it ran: %s", error.summary())
        return StepResult(FAILURE, None, {}, error)

    def kill(self) -> None:
        """Stop the step; before it started, mark it so that it never starts. Safe from a
        signal handler (Airflow's on_kill) and from any thread."""
        self._switch.kill()

    def _stop(self, handle: Any, reason: str) -> None:
        """Stop what the kill switch follows: cancel the wait for a step server, stop the warm
        step, or end the fresh process."""
        from dagster_airflow.step_server.client import StepServerClient

        if isinstance(handle, StepServerClient):
            handle.cancel()
        elif isinstance(handle, subprocess.Popen):
            self._stop_process(handle)
        else:
            handle.kill(self.kill_timeout)

    def _stop_process(self, process: subprocess.Popen[str]) -> None:
        if process.poll() is not None:
            return
        # Airflow's execution_timeout raises inside run() and only then calls on_kill: nobody
        # reads the step's output any more, so read the rest here, or its last words (that it
        # was stopped) never reach the task log. (A kill through SIGTERM interrupts run() in
        # the same thread, and run() goes on reading once the handler returns.)
        drain = None
        if not self._reading:
            drain = threading.Thread(target=self._drain, name="step-output", daemon=True)
            drain.start()
        # On Linux this SIGTERMs the reaper, alone in its group: it SIGTERMs the step's group,
        # SIGKILLs it after kill_timeout and ends what the step left; the SIGKILL below is for a
        # reaper that did not.
        grace = REAPER_GRACE if self._reaped() else 0.0
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(self.kill_timeout + grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass
        if drain is not None:
            drain.join(self.kill_timeout)

    def _drain(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        assert self._step_log is not None
        try:
            for line in self._process.stdout:
                self._step_log.feed(line)
        except (OSError, ValueError):  # closed meanwhile
            pass


def _describe(handle: Any) -> str:
    pid = getattr(handle, "pid", None)
    return f"step process {pid}" if pid is not None else "the wait for a step server"


@hookimpl
def dagster_airflow_register_runners(register):
    register(SubprocessRunner)
