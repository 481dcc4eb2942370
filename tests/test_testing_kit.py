"""The test kit: registering a plugin for one test, and what importing the kit costs."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from dagster_airflow import hookimpl
from dagster_airflow.cli import main
from dagster_airflow.errors import PluginError
from dagster_airflow.plugins.manager import get_plugins
from dagster_airflow.storage.filesystem import FilesystemStorage
from dagster_airflow.testing import plugin_registered
from dagster_airflow.testing.fixtures import register_plugin  # noqa: F401 - a fixture


class ScratchStorage(FilesystemStorage):
    name = "scratch"


def test_a_registered_storage_class_is_there_inside_the_block_only():
    with plugin_registered(ScratchStorage) as plugins:
        assert plugins is get_plugins()
        assert get_plugins().storage("scratch").cls is ScratchStorage
    with pytest.raises(PluginError, match="storage 'scratch' is not available"):
        get_plugins().storage("scratch")


def test_it_is_removed_when_the_block_fails():
    with pytest.raises(RuntimeError), plugin_registered(ScratchStorage):
        raise RuntimeError("the test failed")
    assert "scratch" not in get_plugins().storages.backends


def test_a_plugin_module_with_hook_implementations(register_plugin):  # noqa: F811
    plugin = types.ModuleType("my_plugin")

    class MyStorage(FilesystemStorage):
        name = "mine"

    @hookimpl
    def dagster_airflow_register_storages(register):
        register(MyStorage)

    plugin.dagster_airflow_register_storages = dagster_airflow_register_storages
    plugins = register_plugin(plugin)
    assert plugins.storage("mine").plugin == "my_plugin"
    with pytest.raises(ValueError, match="a plugin named 'my_plugin' is registered already"):
        register_plugin(plugin)


def test_the_fixture_removed_what_the_previous_test_registered():
    assert "mine" not in get_plugins().storages.backends


def test_only_plugins_and_backend_classes_can_be_registered():
    with pytest.raises(TypeError, match="cannot register <class 'int'>"), plugin_registered(int):
        pass


def test_the_listing_shows_a_plugin_registered_in_code(capsys):
    with plugin_registered(ScratchStorage):
        assert main(["plugins", "--json"]) == 0
    scratch = next(
        b for b in json.loads(capsys.readouterr().out)["backends"] if b["name"] == "scratch"
    )
    assert scratch["distribution"] is None
    assert scratch["plugin"] == "tests.test_testing_kit.ScratchStorage"


def test_importing_the_kit_imports_neither_pytest_nor_either_side():
    code = (
        "import sys, dagster_airflow.testing\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pytest', 'airflow', 'dagster'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr
