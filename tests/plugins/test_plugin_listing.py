"""`dagster-airflow plugins`: every backend with its distribution, and every broken plugin."""

from __future__ import annotations

import json
import os

import pytest

from dagster_airflow import __version__
from dagster_airflow.errors import PluginError
from dagster_airflow.plugins.manager import Plugins, build_plugin_manager
from tests.conftest import run_cli
from tests.plugin_dists import write_distribution

GOOD = """
    from dagster_airflow import hookimpl
    from dagster_airflow.runners.subprocess import SubprocessRunner

    class NiceRunner(SubprocessRunner):
        name = "nice"

    @hookimpl
    def dagster_airflow_register_runners(register):
        register(NiceRunner)
"""
BROKEN_IMPORT = "import a_module_that_is_not_installed\n"
MISSPELLED = """
    from dagster_airflow import hookimpl

    @hookimpl
    def dagster_airflow_register_runner(register):
        pass
"""
CLAIMS_FILESYSTEM = """
    from dagster_airflow import hookimpl
    from dagster_airflow.storage.filesystem import FilesystemStorage

    class Imposter(FilesystemStorage):
        pass

    @hookimpl
    def dagster_airflow_register_storages(register):
        register(Imposter)
"""


@pytest.fixture
def plugins_path(tmp_path):
    """A path with one good plugin and three broken ones, each its own distribution."""
    for name, source, version in [
        ("good", GOOD, "2.0"),
        ("broken", BROKEN_IMPORT, "1.0"),
        ("misspelled", MISSPELLED, "1.1"),
        ("imposter", CLAIMS_FILESYSTEM, "0.3"),
    ]:
        write_distribution(
            tmp_path, name, source, {"dagster_airflow": f"{name} = {name}_plugin"}, version
        )
    return tmp_path


def cli_with(path, *args):
    return run_cli(*args, env={**os.environ, "PYTHONPATH": str(path)})


def test_lists_builtins_and_installed_plugins_with_their_distributions():
    done = run_cli("plugins")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Runners:"
    assert any(
        line.split()
        == [
            "subprocess",
            "dagster-on-airflow",
            __version__,
            "dagster_airflow.runners.subprocess.SubprocessRunner",
        ]
        for line in lines
    )
    # The example plugin, installed by `make test` as a real distribution.
    assert any(line.split()[:3] == ["venv", "dagster-airflow-venv", "0.1.0"] for line in lines)
    assert "Storages:" in lines
    assert "failed" not in done.stdout


def test_broken_plugins_are_listed_with_their_errors_and_hide_nothing(plugins_path):
    done = cli_with(plugins_path, "plugins")
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert "nice         good-plugin 2.0" in out
    assert "filesystem   dagster-on-airflow" in out  # the built-in keeps its name
    failed = out.split("Plugins that failed to load:\n")[1].splitlines()
    assert sorted(failed) == [
        "  broken (broken-plugin 1.0): ModuleNotFoundError: No module named "
        "'a_module_that_is_not_installed'",
        "  imposter (imposter-plugin 0.3): PluginError: two plugins claim the storage name "
        "'filesystem': 'dagster_airflow.storage.filesystem' (dagster_airflow.storage.filesystem."
        "FilesystemStorage) and 'imposter' (imposter_plugin.Imposter); uninstall one of them.",
        "  misspelled (misspelled-plugin 1.1): PluginError: a dagster_airflow plugin implements "
        "a hook that does not exist: unknown hook 'dagster_airflow_register_runner' in plugin "
        f"{failed_module_repr(out)}; the hooks are dagster_airflow_register_runners and "
        "dagster_airflow_register_storages.",
    ]


def failed_module_repr(out: str) -> str:
    # pluggy names the plugin by its module's repr, which holds the temporary path.
    start = out.index("in plugin <module 'misspelled_plugin'") + len("in plugin ")
    return out[start : out.index(">", start) + 1]


def test_json_listing(plugins_path):
    done = cli_with(plugins_path, "plugins", "--json")
    data = json.loads(done.stdout)
    nice = next(b for b in data["backends"] if b["name"] == "nice")
    assert nice == {
        "kind": "runner",
        "name": "nice",
        "distribution": "good-plugin",
        "version": "2.0",
        "plugin": "good",
        "class": "good_plugin.NiceRunner",
    }
    assert {f["plugin"] for f in data["failed"]} == {"broken", "misspelled", "imposter"}


@pytest.fixture
def broken_path(tmp_path):
    return write_distribution(
        tmp_path, "broken", BROKEN_IMPORT, {"dagster_airflow": "broken = broken_plugin"}
    )


BROKEN_MESSAGE = (
    "the dagster_airflow plugin 'broken' (broken-plugin 1.0) failed to load: "
    "ModuleNotFoundError: No module named 'a_module_that_is_not_installed'; fix or uninstall it "
    "(`dagster-airflow plugins` lists every plugin and its error)."
)


def test_running_still_fails_loudly_on_a_broken_plugin(broken_path, monkeypatch):
    monkeypatch.syspath_prepend(str(broken_path))
    with pytest.raises(PluginError) as caught:
        Plugins(build_plugin_manager())
    assert str(caught.value) == BROKEN_MESSAGE


def test_scaffolding_with_a_broken_plugin_is_one_sentence_not_a_traceback(broken_path):
    done = cli_with(broken_path, "scaffold", "job", "-f", __file__)
    assert done.returncode == 2
    assert done.stderr == f"dagster-airflow scaffold: {BROKEN_MESSAGE}\n"
