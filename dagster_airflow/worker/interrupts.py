"""A stop asked of the step's process (Dagster side): SIGTERM (a runner's kill, `docker stop`,
ECS stopping the task) or SIGINT interrupts the step as Ctrl-C would, and is remembered.

Dagster's execution maps both to its own handlers once it begins. Before that (importing
Dagster, loading the code location, planning), the interruption is a KeyboardInterrupt, which
code that catches everything can swallow (a bare ``except:`` around an import in the user's
module, an exception raised inside a finalizer): the remembered stop is asked again just before
Dagster's execution, so the step never runs after it was stopped.
"""

from __future__ import annotations

import signal
from types import FrameType

_asked = False


def _interrupt(signum: int, frame: FrameType | None) -> None:
    global _asked
    _asked = True
    raise KeyboardInterrupt


def install() -> None:
    """SIGTERM and SIGINT interrupt the step. SIGINT too: a process started in the background
    inherits it ignored, and Dagster maps SIGTERM to SIGINT's handler, so it would ignore a
    SIGTERM once its execution had begun."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def raise_if_asked() -> None:
    """Interrupt now if a stop came earlier and was swallowed."""
    if _asked:
        raise KeyboardInterrupt
