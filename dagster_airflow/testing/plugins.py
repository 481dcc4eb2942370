"""Register a plugin for the length of one test, and always remove it.

    from dagster_airflow.testing import plugin_registered

    def test_my_runner_is_found():
        with plugin_registered(MyRunner) as plugins:
            assert plugins.runner("mine").cls is MyRunner

Or, with the pytest fixture (import it into your conftest.py):

    from dagster_airflow.testing import register_plugin

    def test_my_storage(register_plugin):
        plugins = register_plugin(my_plugin_module)

The plugin joins the built-ins and the installed plugins in this process only: a worker that a
runner starts in another process loads the installed plugins, so a storage that workers must use
has to be installed (`pip install -e .`) for runner tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dagster_airflow.plugins import hookimpl, manager
from dagster_airflow.plugins.manager import Plugins


class BackendPlugin:
    """A plugin that registers one runner or storage class: what a backend class becomes when
    it is passed to plugin_registered directly."""

    def __init__(self, cls: type) -> None:
        from dagster_airflow.runners.base import StepRunner
        from dagster_airflow.storage.base import IntermediateStorage

        if not (isinstance(cls, type) and issubclass(cls, StepRunner | IntermediateStorage)):
            raise TypeError(
                f"cannot register {cls!r}: pass a plugin (a module or object with @hookimpl "
                "functions) or a StepRunner or IntermediateStorage subclass."
            )
        self.cls = cls
        self.is_runner = issubclass(cls, StepRunner)

    @hookimpl
    def dagster_airflow_register_runners(self, register):
        if self.is_runner:
            register(self.cls)

    @hookimpl
    def dagster_airflow_register_storages(self, register):
        if not self.is_runner:
            register(self.cls)


@contextmanager
def plugin_registered(plugin: object, name: str | None = None) -> Iterator[Plugins]:
    """Register ``plugin`` on top of the installed ones for the block; yield the loaded plugins.

    ``plugin`` is a module or object with ``@hookimpl`` functions, or a runner or storage class.
    ``get_plugins()`` (what DagsterOperator and the CLI use) sees it inside the block only.
    """
    if isinstance(plugin, type):
        name = name or f"{plugin.__module__}.{plugin.__qualname__}"
        plugin = BackendPlugin(plugin)
    name = name or getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{id(plugin)}"
    if name in manager._EXTRA_PLUGINS:
        raise ValueError(f"a plugin named {name!r} is registered already; pass another name.")
    manager._EXTRA_PLUGINS[name] = plugin
    manager.reset_plugins()
    try:
        yield manager.get_plugins()
    finally:
        del manager._EXTRA_PLUGINS[name]
        manager.reset_plugins()
