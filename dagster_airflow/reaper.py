"""A step's reaper: the process that outlives the step's own code and ends every process the
step started, however the step ends (Linux; stdlib only: both sides use it).

A process that double-forks and calls ``setsid`` (a daemon) leaves the step's process group and
session, so a process-group kill misses it. But Linux re-parents an orphan to its nearest living
ancestor that is a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``): a reaper that is an
ancestor of the step therefore keeps every process the step starts below it, however it
detached. Once the step has exited, the reaper SIGKILLs and reaps every descendant left, then
says so in one line of the step's output.

Two reapers use this module:

- ``python -m dagster_airflow.reaper --kill-timeout S -- COMMAND...``: the subprocess
  runner's fresh step process. It forks COMMAND (the step, in a session of its own), relays a
  SIGTERM to the step's process group and SIGKILLs it ``S`` seconds later, SIGKILLs it at once
  when the Airflow task process dies (its parent-death signal is SIGHUP), and exits as the step
  did, once nothing the step started is left.
- the step server's supervisor of a forked step (step_server/server.py), with the same calls.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# What the fresh reaper gets when its parent, the Airflow task process, dies.
PARENT_DIED = signal.SIGHUP
_SIGNALS = (signal.SIGTERM, signal.SIGINT, PARENT_DIED, signal.SIGCHLD)


def _prctl(option: int, value: int) -> bool:
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def become_subreaper() -> bool:
    """Make this process the one that orphans below it are re-parented to; False where the
    system cannot (not Linux): then only a process-group kill remains."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent(parent: int, sig: int = signal.SIGKILL) -> None:
    """Have ``sig`` sent to this process when ``parent`` (the thread that forked it) ends; sent
    at once if it already has. Linux only; elsewhere it does nothing."""
    if _prctl(PR_SET_PDEATHSIG, sig) and os.getppid() != parent:
        os.kill(os.getpid(), sig)  # the parent died before prctl took effect


def die_with_parent_preexec(parent: int):
    """``die_with_parent`` as a Popen ``preexec_fn``: the child dies by SIGKILL with ``parent``."""
    return lambda: die_with_parent(parent)


def _processes() -> dict[int, tuple[int, str, str, str]]:
    """Every process: pid -> (parent pid, state, start time, command name), from /proc."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                text = stat.read()
        except OSError:  # gone meanwhile
            continue
        command, _, rest = text.partition("(")[2].rpartition(")")
        fields = rest.split()
        found[int(name)] = (int(fields[1]), fields[0], fields[19], command)
    return found


def descendants(root: int) -> dict[int, tuple[str, str]]:
    """The living processes below ``root``: pid -> (start time, command name)."""
    processes = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _, _) in processes.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = {}, list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        _, state, started, command = processes[pid]
        if state != "Z":  # a zombie is dead: only its parent's wait remains
            found[pid] = (started, command)
        todo.extend(children.get(pid, ()))
    return found


def _kill(pid: int, started: str) -> bool:
    """SIGKILL ``pid`` if it is still the process that started at ``started`` (not a new
    process that was given a reused pid); False if it may not be killed (another user's, as a
    set-user-ID program is)."""
    try:
        pidfd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        pidfd = None  # gone, or no pidfd here: the start time check below still holds
    try:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rpartition(")")[2].split()[19] != started:
                return True
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except PermissionError:
        return False
    except (OSError, IndexError):
        pass  # gone meanwhile
    finally:
        if pidfd is not None:
            os.close(pidfd)
    return True


def _has_children() -> bool:
    """Whether this process has a child, living or ended and not yet reaped (one that has
    ended is reaped here). Without one, no process is below this one."""
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return False
    return True


def end_descendants() -> tuple[dict[int, str], dict[int, str]]:
    """SIGKILL every process below this one and reap them, until none is left. Orphans come
    here (this process is their subreaper), so waiting for this process's own children is
    waiting for all of them. The processes ended and those this user may not kill (pid ->
    command name)."""
    ended: dict[int, str] = {}
    while True:
        if not _has_children():
            return ended, {}  # so none below: the common end of a step, without a /proc scan
        left = descendants(os.getpid())
        refused = {
            pid: left[pid][1] for pid, (started, _) in left.items() if not _kill(pid, started)
        }
        ended.update((pid, command) for pid, (_, command) in left.items() if pid not in refused)
        if refused and len(refused) == len(left):
            return ended, refused  # waiting for them could last forever
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return ended, {}


def _listed(processes: dict[int, str]) -> str:
    count = len(processes)
    listed = ", ".join(f"{pid} {command}" for pid, command in sorted(processes.items()))
    return f"{count} process{'es' if count > 1 else ''} ({listed})"


def leftovers_line(ended: dict[int, str], refused: dict[int, str]) -> str:
    """The step output's one line about the processes the step left running."""
    left = f"dagster-airflow: the step left {_listed({**ended, **refused})} running"
    if refused:
        return (
            f"{left}; this user may not kill {_listed(refused)}, which runs on (the rest were "
            "ended with SIGKILL): have the op wait for what it starts.\n"
        )
    them = "it" if len(ended) == 1 else "them"
    return (
        f"{left} and ended {them} with SIGKILL: every process a step starts ends with the "
        "step, so have the op wait for what it starts.\n"
    )


class StepReaper:
    """The parent of one step, itself a subreaper: stops the step when asked, reaps whatever
    ends below it, and ends what the step left behind."""

    def __init__(self, step: int, kill_timeout: float) -> None:
        self.step = step
        self.kill_timeout = kill_timeout
        self.status: int | None = None
        self._kill_at: float | None = None
        try:
            self.pidfd: int | None = os.pidfd_open(step)
        except OSError:  # a kernel before 5.3: SIGCHLD alone says when the step ends
            self.pidfd = None

    def terminate(self) -> None:
        """A kill or a timeout: SIGTERM the step's process group; SIGKILL it after
        ``kill_timeout`` seconds (tick)."""
        if self._kill_at is None:
            _killpg(self.step, signal.SIGTERM)
            self._kill_at = time.monotonic() + self.kill_timeout

    def kill(self) -> None:
        """The task process is gone: SIGKILL the step's process group at once."""
        _killpg(self.step, signal.SIGKILL)

    def wait_seconds(self) -> float | None:
        """How long the caller may wait before the next tick (None: until something happens)."""
        return None if self._kill_at is None else max(0.0, self._kill_at - time.monotonic())

    def tick(self) -> None:
        if self._kill_at is not None and time.monotonic() >= self._kill_at:
            self.kill()

    def reap(self) -> bool:
        """Reap every child that ended: the step, or an orphan re-parented here (so that none
        stays a zombie while the step runs). Whether the step has ended."""
        while self.status is None:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == self.step:
                self.status = status
        return self.status is not None

    def finish(self, out_fd: int | None) -> int:
        """Once the step ended: end what it left, say so on ``out_fd``; the step's exit code
        (negative: the signal that ended it)."""
        if self.pidfd is not None:
            os.close(self.pidfd)
        ended, refused = end_descendants()
        if (ended or refused) and out_fd is not None:
            with contextlib.suppress(OSError):  # the reader may be gone (the task died)
                os.write(out_fd, leftovers_line(ended, refused).encode())
        assert self.status is not None
        return os.waitstatus_to_exitcode(self.status)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _exec_step(command: list[str], reaper: int) -> None:
    """In the forked child: become the step (own session, dies with its reaper), exec it."""
    try:
        os.setsid()  # its own process group: a kill stops everything the step started in it
        signal.set_wakeup_fd(-1)
        for sig in _SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        die_with_parent(reaper)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        os.execvp(command[0], command)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
    os._exit(127)


def signal_pipe(signals: Sequence[int]) -> int:
    """A pipe to select on: each of ``signals`` that arrives writes its number to it (read
    them with ``signals_arrived``). The main thread only."""
    wakeup, wakeup_w = os.pipe()
    for fd in (wakeup, wakeup_w):
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    signal.set_wakeup_fd(wakeup_w, warn_on_full_buffer=False)
    for sig in signals:
        signal.signal(sig, lambda signum, frame: None)  # the number on the pipe is the news
    return wakeup


def signals_arrived(wakeup: int) -> list[int]:
    try:
        return list(os.read(wakeup, 512))
    except BlockingIOError:
        return []


def run(command: list[str], kill_timeout: float) -> int:
    """Run ``command`` as a step below this process (the subreaper); its exit code."""
    become_subreaper()
    wakeup = signal_pipe(_SIGNALS)
    # Until the step's pid is known, a kill waits (blocked) instead of finding no step.
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    # The runner started this process to die by SIGKILL with its parent (the Airflow task
    # process); from here on its death is a signal this process handles: it ends the step.
    _prctl(PR_SET_PDEATHSIG, PARENT_DIED)
    sys.stdout.flush()
    sys.stderr.flush()
    me = os.getpid()
    pid = os.fork()
    if pid == 0:
        _exec_step(command, me)
    reaper = StepReaper(pid, kill_timeout)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
    watched = [fd for fd in (reaper.pidfd, wakeup) if fd is not None]
    while not reaper.reap():
        select.select(watched, [], [], reaper.wait_seconds())
        for signum in signals_arrived(wakeup):
            if signum in (signal.SIGTERM, signal.SIGINT):
                reaper.terminate()
            elif signum == PARENT_DIED:
                reaper.kill()
        reaper.tick()
    return reaper.finish(sys.stderr.fileno())


def _exit_as(code: int) -> None:
    """Exit as the step did: with its code, or by the signal that ended it."""
    if code >= 0:
        os._exit(code)
    signal.set_wakeup_fd(-1)
    with contextlib.suppress(OSError, ValueError):  # SIGKILL has no handler to reset
        signal.signal(-code, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [-code])
    os.kill(os.getpid(), -code)
    os._exit(128 - code)


def main(argv: Sequence[str] | None = None) -> None:
    # Imported here: every task that runs a subprocess step imports this module, never main.
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dagster_airflow.reaper")
    parser.add_argument("--kill-timeout", type=float, default=10.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    _exit_as(run(command, args.kill_timeout))


if __name__ == "__main__":
    main()
