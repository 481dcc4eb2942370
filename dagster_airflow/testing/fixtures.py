"""pytest fixtures of the test kit. Import the ones you use into your conftest.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from dagster_airflow.plugins.manager import Plugins
from dagster_airflow.testing.plugins import plugin_registered
from dagster_airflow.testing.task_log import TaskLog


@pytest.fixture
def register_plugin() -> Iterator[Callable[..., Plugins]]:
    """``register_plugin(plugin, name=None)`` registers a plugin until the test ends (see
    plugin_registered) and returns the loaded plugins."""
    with ExitStack() as stack:
        yield lambda plugin, name=None: stack.enter_context(plugin_registered(plugin, name))


@pytest.fixture
def task_log() -> Iterator[TaskLog]:
    """The task log a test hands a runner (``task_log.logger``) and reads back (``task_log.text``),
    whatever Airflow's logging setup and whatever ran before."""
    with TaskLog() as log:
        yield log
