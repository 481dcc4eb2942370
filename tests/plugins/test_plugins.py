"""The plugin machinery: built-ins, entry points, and each way a plugin can be wrong."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from dagster_airflow.errors import ConfigurationError, PluginError
from dagster_airflow.plugins.manager import (
    DEFAULT_PLUGINS,
    Plugins,
    build_plugin_manager,
    get_plugins,
)


def test_builtins_are_registered_through_the_hooks():
    plugins = get_plugins()
    assert plugins.runner("subprocess").plugin == "dagster_airflow.runners.subprocess"
    assert plugins.storage("filesystem").plugin == "dagster_airflow.storage.filesystem"


def test_a_task_imports_only_the_builtin_backends_it_names():
    # In a fresh process: what a task does (resolve its runner and storage), then what it left
    # unimported. Each unneeded built-in module cost a task CPU time (issue 28).
    code = textwrap.dedent(
        """
        import sys
        from dagster_airflow.plugins.manager import DEFAULT_PLUGINS, get_plugins
        get_plugins().runner("subprocess")
        get_plugins().storage("filesystem")
        print(sorted(m for m in DEFAULT_PLUGINS if m in sys.modules))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(
        ["dagster_airflow.runners.subprocess", "dagster_airflow.storage.filesystem"]
    )


def test_a_process_that_forks_loads_the_builtins_of_a_kind_ahead():
    # What the step server (storages) and an Airflow job (both kinds) do before they fork.
    code = textwrap.dedent(
        """
        from dagster_airflow.plugins.manager import DEFAULT_PLUGINS, Plugins, build_plugin_manager
        plugins = Plugins(build_plugin_manager(builtins=False))
        plugins.load_builtins("storage")
        print(sorted(m for m in DEFAULT_PLUGINS if plugins.pm.has_plugin(m)))
        plugins.load_builtins()
        print(sorted(m for m in DEFAULT_PLUGINS if plugins.pm.has_plugin(m)))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    storages, everything = done.stdout.strip().splitlines()
    assert storages == str(
        [
            "dagster_airflow.storage.filesystem",
            "dagster_airflow.storage.gcs",
            "dagster_airflow.storage.s3",
        ]
    )
    assert everything == str(sorted(DEFAULT_PLUGINS))


def test_unknown_name_lists_the_installed_ones():
    with pytest.raises(PluginError) as caught:
        get_plugins().runner("kubernetes")
    message = str(caught.value)
    assert message.startswith(
        "runner 'kubernetes' is not available (plugin may not be installed?); installed runners:"
    )
    assert "subprocess" in message
    for name in ("docker", "ecs", "graphql", "subprocess"):
        assert name in message


def test_a_third_party_plugin_claiming_a_builtin_name_fails_when_the_task_names_it(plugin_dist):
    plugin_dist(
        """
        from dagster_airflow import hookimpl
        from dagster_airflow.runners.subprocess import SubprocessRunner

        class Imposter(SubprocessRunner):
            name = "docker"

        @hookimpl
        def dagster_airflow_register_runners(register):
            register(Imposter)
        """
    )
    plugins = Plugins(build_plugin_manager(builtins=False))
    with pytest.raises(PluginError, match="two plugins claim the runner name 'docker'"):
        plugins.runner("docker")


def test_wrong_options_say_which_and_list_the_right_ones():
    backend = get_plugins().storage("filesystem")
    with pytest.raises(ConfigurationError, match="storage 'filesystem' has no option 'bucket'"):
        backend.create({"bucket": "b"})


@pytest.fixture
def plugin_dist(tmp_path, monkeypatch):
    """Install a third-party plugin for real: a module plus a distribution's entry point."""

    def install(module_source: str, name: str = "thirdparty") -> None:
        (tmp_path / f"{name}_plugin.py").write_text(textwrap.dedent(module_source))
        dist = tmp_path / f"{name}_plugin-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}-plugin\nVersion: 1.0\n"
        )
        (dist / "entry_points.txt").write_text(f"[dagster_airflow]\n{name} = {name}_plugin\n")

    monkeypatch.syspath_prepend(str(tmp_path))
    yield install
    for module in [m for m in sys.modules if m.endswith("_plugin")]:
        sys.modules.pop(module)


def test_third_party_runner_is_found_through_its_entry_point(plugin_dist):
    plugin_dist(
        """
        from dagster_airflow import hookimpl
        from dagster_airflow.runners.subprocess import SubprocessRunner

        class NiceRunner(SubprocessRunner):
            name = "nice"

        @hookimpl
        def dagster_airflow_register_runners(register):
            register(NiceRunner)
        """
    )
    plugins = Plugins(build_plugin_manager())
    assert plugins.runner("nice").plugin == "thirdparty"
    assert plugins.runner("nice").cls.__name__ == "NiceRunner"


def test_two_plugins_claiming_one_name_fail_loudly(plugin_dist):
    plugin_dist(
        """
        from dagster_airflow import hookimpl
        from dagster_airflow.storage.filesystem import FilesystemStorage

        class MyFilesystem(FilesystemStorage):
            pass

        @hookimpl
        def dagster_airflow_register_storages(register):
            register(MyFilesystem)
        """
    )
    with pytest.raises(PluginError) as caught:
        Plugins(build_plugin_manager())
    assert str(caught.value).startswith(
        "two plugins claim the storage name 'filesystem': 'dagster_airflow.storage.filesystem'"
    )
    assert "'thirdparty' (thirdparty_plugin.MyFilesystem); uninstall one of them." in str(
        caught.value
    )


def test_a_misspelled_hook_implementation_is_an_error(plugin_dist):
    plugin_dist(
        """
        from dagster_airflow import hookimpl

        @hookimpl
        def dagster_airflow_register_runner(register):
            pass
        """
    )
    with pytest.raises(PluginError, match="implements a hook that does not exist"):
        build_plugin_manager()


def test_threads_that_ask_for_a_builtin_at_once_get_it_registered_once():
    # A restarted triggerer rebuilds the runners of its deferred steps at once, in its thread
    # pool: "Plugin name already registered" failed one of them (seen on the real deployment).
    import threading
    from concurrent.futures import ThreadPoolExecutor

    plugins = Plugins(build_plugin_manager(builtins=False))
    ready = threading.Barrier(8)

    def ask(kind: str):
        ready.wait()
        return getattr(plugins, kind)("docker" if kind == "runner" else "filesystem")

    with ThreadPoolExecutor(8) as pool:
        backends = list(pool.map(ask, ["runner", "storage"] * 4))

    assert {backend.name for backend in backends} == {"docker", "filesystem"}
    assert plugins.pm.has_plugin("dagster_airflow.runners.docker")
