"""pytest fixtures of the test kit. Import the ones you use into your conftest.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from dagster_airflow.plugins.manager import Plugins
from dagster_airflow.testing.plugins import plugin_registered


@pytest.fixture
def register_plugin() -> Iterator[Callable[..., Plugins]]:
    """``register_plugin(plugin, name=None)`` registers a plugin until the test ends (see
    plugin_registered) and returns the loaded plugins."""
    with ExitStack() as stack:
        yield lambda plugin, name=None: stack.enter_context(plugin_registered(plugin, name))
