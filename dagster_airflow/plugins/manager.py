"""The plugin manager: built-in backends plus whatever the entry-point group brings.

Built once per process, on first use (never at import), so a DAG file that only builds operators
loads no plugin at all. A task's plugins (get_plugins) import a built-in backend's module only
when the task names it: importing all seven cost each task about 40 ms of CPU (issue 28).
Third-party entry points are all loaded, as their names are only known once loaded.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import inspect
import logging
import threading
from collections.abc import Mapping
from typing import Any

import attrs
import pluggy

from dagster_airflow.errors import ConfigurationError, PluginError
from dagster_airflow.options import declared_options, option_names
from dagster_airflow.plugins import hookspecs

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dagster_airflow"

# The built-in backends by kind and name, and the module that registers each through the same
# hooks as third-party ones (tests/plugins/test_plugin_meta.py checks this map against them).
BUILTIN_BACKENDS: dict[str, dict[str, str]] = {
    "runner": {
        "subprocess": "dagster_airflow.runners.subprocess",
        "docker": "dagster_airflow.runners.docker",
        "ecs": "dagster_airflow.runners.ecs",
        "graphql": "dagster_airflow.runners.graphql",
    },
    "storage": {
        "filesystem": "dagster_airflow.storage.filesystem",
        "s3": "dagster_airflow.storage.s3",
        "gcs": "dagster_airflow.storage.gcs",
    },
}
DEFAULT_PLUGINS = tuple(m for names in BUILTIN_BACKENDS.values() for m in names.values())

# Plugins registered on top of the installed ones for a while, by name: what the test kit's
# `plugin_registered` adds and removes (dagster_airflow.testing.plugins). Empty in production.
_EXTRA_PLUGINS: dict[str, object] = {}


@attrs.frozen
class Backend:
    """A registered runner or storage class and the plugin that registered it."""

    kind: str  # "runner" or "storage"
    name: str
    cls: type
    plugin: str  # the registering plugin's name: a module or an entry point name

    def create(self, options: Mapping[str, Any]) -> Any:
        """An instance configured with ``options``; a wrong option is one clear sentence."""
        check_options(self.kind, self.name, self.cls, options)
        options_class = declared_options(self.cls)
        if options_class is not None:  # built, and so checked value by value, here
            return self.cls(options_class(**options))
        return self.cls(**options)


def _option_names(cls: type) -> dict[str, bool]:
    """A backend's options and whether each is required: its declared attrs options class's
    fields, or, for a backend that takes them as keyword arguments, its ``__init__``'s."""
    options_class = declared_options(cls)
    if options_class is not None:
        return option_names(options_class)
    return {
        p.name: p.default is p.empty
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


def check_options(kind: str, name: str, cls: type, options: Mapping[str, Any]) -> None:
    """Raise ConfigurationError naming any unknown or missing option of a backend class."""
    params = _option_names(cls)
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ConfigurationError(
            f"{kind} {name!r} has no option {unknown[0]!r} (value {options[unknown[0]]!r}); "
            f"its options are: {', '.join(sorted(params)) or 'none'}."
        )
    missing = sorted(n for n, required in params.items() if required and n not in options)
    if missing:
        raise ConfigurationError(
            f"{kind} {name!r} needs the option {missing[0]!r}; set it in the DAG's "
            f'default_args ({{"name": {name!r}, {missing[0]!r}: ...}}) or with '
            f"--{kind}-option {missing[0]}=VALUE when scaffolding."
        )


class Registry:
    """What the hooks fill: backends of one kind, keyed by their class's ``name``."""

    def __init__(self, kind: str, unloaded: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.backends: dict[str, Backend] = {}
        self.unloaded = unloaded  # built-in names whose module is not imported (yet)

    def register_for(self, plugin: str):
        def register(cls: type) -> None:
            name = getattr(cls, "name", None)
            if not isinstance(name, str) or not name:
                raise PluginError(
                    f"plugin {plugin!r} registered {self.kind} class {cls!r} without a "
                    "'name'; give the class a string attribute 'name'."
                )
            existing = self.backends.get(name)
            if existing is not None and existing.cls is not cls:
                raise PluginError(
                    f"two plugins claim the {self.kind} name {name!r}: {existing.plugin!r} "
                    f"({existing.cls.__module__}.{existing.cls.__qualname__}) and {plugin!r} "
                    f"({cls.__module__}.{cls.__qualname__}); uninstall one of them."
                )
            self.backends[name] = Backend(self.kind, name, cls, plugin)

        return register

    def forget(self, plugin: str) -> None:
        """Drop what one plugin registered (it failed halfway, in a lenient listing)."""
        self.backends = {n: b for n, b in self.backends.items() if b.plugin != plugin}

    def get(self, name: str) -> Backend:
        try:
            return self.backends[name]
        except KeyError:
            installed = ", ".join(sorted({*self.backends, *self.unloaded})) or "none"
            raise PluginError(
                f"{self.kind} {name!r} is not available (plugin may not be installed?); "
                f"installed {self.kind}s: {installed}."
            ) from None


@attrs.frozen
class PluginFailure:
    """A plugin that could not be loaded or registered, and why (for `dagster-airflow plugins`)."""

    plugin: str  # the entry point's (or module's) name
    distribution: str | None  # "name version" of the distribution that declares it
    error: str


class Plugins:
    """The loaded plugin manager and its two registries.

    Strict by default: the first broken plugin raises. With a ``failures`` list (the lenient
    listing), a plugin whose hook fails is recorded there and its registrations dropped.
    A built-in module ``pm`` lacks is registered when its backend is first asked for.
    """

    def __init__(
        self, pm: pluggy.PluginManager, failures: list[PluginFailure] | None = None
    ) -> None:
        self.pm = pm
        # A triggerer rebuilds the runners of several deferred steps at once, each in a thread
        # of its pool: a built-in module is registered by one of them only.
        self._loading = threading.Lock()
        unloaded = {
            kind: tuple(n for n, module in names.items() if not pm.has_plugin(module))
            for kind, names in BUILTIN_BACKENDS.items()
        }
        self.runners = Registry("runner", unloaded["runner"])
        self.storages = Registry("storage", unloaded["storage"])
        for plugin_name, plugin in pm.list_name_plugin():
            self._register(plugin_name, plugin, failures)

    def _register(
        self, plugin_name: str | None, plugin: object, failures: list[PluginFailure] | None
    ) -> None:
        name = plugin_name or getattr(plugin, "__name__", repr(plugin))
        try:
            self._call(plugin, "dagster_airflow_register_runners", self.runners, name)
            self._call(plugin, "dagster_airflow_register_storages", self.storages, name)
        except Exception as exc:
            if failures is None:
                raise
            self.runners.forget(name)
            self.storages.forget(name)
            failures.append(PluginFailure(name, distribution_of(self.pm, plugin), _describe(exc)))

    def _load_builtin(self, registry: Registry, name: str) -> None:
        """Import and register the built-in module of ``name``, once; before any lookup of a
        built-in name, so a third-party plugin claiming it still fails loudly."""
        module_name = BUILTIN_BACKENDS[registry.kind].get(name)
        if module_name is None:
            return
        with self._loading:
            if self.pm.has_plugin(module_name):
                return
            module = importlib.import_module(module_name)
            self.pm.register(module, name=module_name)
            registry.unloaded = tuple(n for n in registry.unloaded if n != name)
            self._register(module_name, module, None)

    def _call(self, plugin: object, hook_name: str, registry: Registry, name: str) -> None:
        # Call each plugin's implementation on its own, so the registry knows who registered what.
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            if impl.plugin is plugin:
                impl.function(register=registry.register_for(name))

    def load_builtins(self, *kinds: str) -> None:
        """Register the built-in backends of these kinds ("runner", "storage"; both by default)
        now, not at their first lookup: what a process does before it forks the processes that
        will look them up (the step server, an Airflow job: dagster_airflow.task.preload)."""
        for registry in (self.runners, self.storages):
            if not kinds or registry.kind in kinds:
                for name in BUILTIN_BACKENDS[registry.kind]:
                    self._load_builtin(registry, name)

    def runner(self, name: str) -> Backend:
        self._load_builtin(self.runners, name)
        return self.runners.get(name)

    def storage(self, name: str) -> Backend:
        self._load_builtin(self.storages, name)
        return self.storages.get(name)


def _builtin_plugin_manager(builtins: bool = True) -> pluggy.PluginManager:
    """The hookspecs, the built-in modules (all, or none for a lazy Plugins) and the extras."""
    pm = pluggy.PluginManager("dagster_airflow")
    pm.add_hookspecs(hookspecs)
    for module_name in DEFAULT_PLUGINS if builtins else ():
        pm.register(importlib.import_module(module_name), name=module_name)
    for name, plugin in _EXTRA_PLUGINS.items():
        pm.register(plugin, name=name)
    return pm


def _check_pending(pm: pluggy.PluginManager) -> None:
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(
            f"a dagster_airflow plugin implements a hook that does not exist: {exc}; the hooks "
            "are dagster_airflow_register_runners and dagster_airflow_register_storages."
        ) from exc


def build_plugin_manager(
    load_entry_points: bool = True, builtins: bool = True
) -> pluggy.PluginManager:
    """Built-ins (unless ``builtins`` is False: Plugins then imports each when it is named)
    plus every entry point of the group; the first broken plugin raises."""
    pm = _builtin_plugin_manager(builtins)
    if load_entry_points:
        _load_entry_points(pm, strict=True)
    _check_pending(pm)
    return pm


def _load_entry_points(pm: pluggy.PluginManager, strict: bool) -> list[PluginFailure]:
    """Load the group's entry points one at a time. Strict: raise a PluginError naming the first
    that fails; else block each one that fails and return them all."""
    failures: list[PluginFailure] = []
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or pm.has_plugin(ep.name) or pm.is_blocked(ep.name):
                continue
            try:
                pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=ep.name)
                _check_pending(pm)
            except Exception as exc:
                failure = PluginFailure(ep.name, _dist_label(dist), _describe(exc))
                if strict:
                    raise PluginError(
                        f"the dagster_airflow plugin {ep.name!r} ({failure.distribution}) failed "
                        f"to load: {failure.error}; fix or uninstall it (`dagster-airflow "
                        "plugins` lists every plugin and its error)."
                    ) from exc
                pm.set_blocked(ep.name)  # unregistered, and not tried again
                failures.append(failure)
    return failures


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _dist_label(dist: Any) -> str:
    return f"{dist.metadata['Name']} {dist.version}"


def distribution_of(pm: pluggy.PluginManager, plugin: object) -> str | None:
    """The distribution ("name version") that provides a plugin: dagster-on-airflow for the
    built-ins, the entry point's distribution for the others, None for one registered in code."""
    for registered, dist in pm.list_plugin_distinfo():
        if registered is plugin:
            return f"{dist.project_name} {dist.version}"
    if pm.get_name(plugin) in DEFAULT_PLUGINS:
        from dagster_airflow import __version__
        from dagster_airflow.distribution import DISTRIBUTION, version

        # No version installed: imported from a source tree.
        return f"{DISTRIBUTION} {version() or __version__}"
    return None


def inspect_plugins() -> tuple[Plugins, list[PluginFailure]]:
    """Every plugin that loads, and every one that does not with its error: one entry point
    at a time, so one broken plugin hides none of the others. For listing, never for running."""
    pm = _builtin_plugin_manager()
    failures = _load_entry_points(pm, strict=False)
    return Plugins(pm, failures), failures


def plugin_listing() -> tuple[list[dict[str, Any]], list[PluginFailure]]:
    """What `dagster-airflow plugins` shows: a row per runner and storage, and the failures."""
    plugins, failures = inspect_plugins()
    rows = []
    for registry in (plugins.runners, plugins.storages):
        for name, backend in sorted(registry.backends.items()):
            provider = distribution_of(plugins.pm, plugins.pm.get_plugin(backend.plugin))
            dist, _, version = (provider or "").rpartition(" ")
            rows.append(
                {
                    "kind": backend.kind,
                    "name": name,
                    "distribution": dist or None,
                    "version": version or None,
                    "plugin": backend.plugin,
                    "class": f"{backend.cls.__module__}.{backend.cls.__qualname__}",
                }
            )
    return rows, failures


@functools.cache
def get_plugins() -> Plugins:
    """The process's plugins, loaded on first use; a built-in backend's module on its first
    lookup."""
    return Plugins(build_plugin_manager(builtins=False))


def reset_plugins() -> None:
    """Forget the loaded plugins, so the next get_plugins() loads them again."""
    get_plugins.cache_clear()
