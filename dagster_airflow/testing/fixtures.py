"""pytest fixtures of the test kit. Import the ones you use into your conftest.py."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

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


@pytest.fixture(scope="session", autouse=True)
def step_server_runtime_dir() -> Iterator[Path]:
    """Step servers the session's steps start listen in a runtime directory of its own, never a
    developer's (/tmp keeps socket paths short); all are stopped at the end."""
    from dagster_airflow.step_server.protocol import RUNTIME_DIR_ENV_VAR, stop_servers

    path = Path(tempfile.mkdtemp(prefix="da-suite-", dir="/tmp"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(RUNTIME_DIR_ENV_VAR, str(path))
        yield path
    stop_servers(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def stop_step_servers(step_server_runtime_dir: Path) -> Iterator[None]:
    """Every test stops, by pid, the step servers its steps started."""
    from dagster_airflow.step_server.protocol import stop_servers

    yield
    stop_servers(step_server_runtime_dir)
