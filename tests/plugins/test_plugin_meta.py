"""Meta-tests in the manner of datasette's: every hook is documented and tested, and every
built-in backend is tested by a subclass of its contract class."""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

from dagster_airflow.plugins import hookspecs
from dagster_airflow.plugins.manager import BUILTIN_BACKENDS, DEFAULT_PLUGINS
from dagster_airflow.runners.base import StepRunner
from dagster_airflow.storage.base import IntermediateStorage
from dagster_airflow.testing import RunnerContract, StorageContract
from tests.conftest import ROOT

HOOKS = sorted(
    name
    for name, value in vars(hookspecs).items()
    if inspect.isfunction(value) and hasattr(value, "dagster_airflow_spec")
)
PLUGINS_PAGE = ROOT / "docs" / "plugins.md"
TEST_SOURCES = {
    path: path.read_text()
    for folder in (ROOT / "tests", ROOT / "examples")
    for path in folder.rglob("test_*.py")
}


def test_the_hooks_are_found():
    assert HOOKS == ["dagster_airflow_register_runners", "dagster_airflow_register_storages"]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook):
    assert re.search(rf"^### `{hook}\(", PLUGINS_PAGE.read_text(), re.M), (
        f"docs/plugins.md has no '### `{hook}(...)`' section"
    )


def test_the_docs_document_no_hook_that_does_not_exist():
    documented = re.findall(r"^### `(dagster_airflow_\w+)\(", PLUGINS_PAGE.read_text(), re.M)
    assert sorted(documented) == HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook):
    """A test implements the hook in a plugin of its own and checks what it registered."""
    implementing = [path for path, text in TEST_SOURCES.items() if f"def {hook}(" in text]
    assert implementing, f"no test implements {hook}"


def registered_backends(module_name: str) -> list[type]:
    """What a built-in plugin module registers, through its own hook implementations."""
    module = importlib.import_module(module_name)
    found: list[type] = []
    for hook in HOOKS:
        implementation = getattr(module, hook, None)
        if implementation is not None:
            implementation(register=found.append)
    return found


def contract_tests() -> dict[type, list[type]]:
    """Each contract class's subclasses in the backend test modules, imported for the purpose."""
    for folder in ("runners", "storage"):
        for path in (ROOT / "tests" / folder).glob("test_*.py"):
            importlib.import_module(f"tests.{folder}.{path.stem}")
    return {contract: all_subclasses(contract) for contract in (RunnerContract, StorageContract)}


def all_subclasses(cls: type) -> list[type]:
    return [s for sub in cls.__subclasses__() for s in (sub, *all_subclasses(sub))]


BUILTINS = [(module, cls) for module in DEFAULT_PLUGINS for cls in registered_backends(module)]


def test_every_builtin_registers_a_backend():
    assert {module for module, _ in BUILTINS} == set(DEFAULT_PLUGINS)


def test_the_lazy_map_of_builtins_names_what_each_module_registers():
    # A task imports a built-in module by the name it looks up, so the map must be exact.
    registered = {
        ("runner" if issubclass(cls, StepRunner) else "storage", cls.name): module
        for module, cls in BUILTINS
    }
    mapped = {(k, name): m for k, names in BUILTIN_BACKENDS.items() for name, m in names.items()}
    assert mapped == registered


@pytest.mark.parametrize(
    ("module", "backend"), BUILTINS, ids=[f"{cls.name}" for _, cls in BUILTINS]
)
def test_every_builtin_backend_passes_its_contract_class(module, backend):
    contract = RunnerContract if issubclass(backend, StepRunner) else StorageContract
    assert issubclass(backend, StepRunner | IntermediateStorage)
    # A contract subclass tests this backend when its module uses the class, or is named for it.
    testing = [
        test
        for test in contract_tests()[contract]
        if test.__module__.startswith("tests.")
        and (
            backend in vars(importlib.import_module(test.__module__)).values()
            or test.__module__.rsplit(".", 1)[-1] == f"test_{backend.name}"
        )
    ]
    assert testing, (
        f"built-in {contract.__name__[:-8].lower()} {backend.name!r} ({module}) has no test class "
        f"subclassing {contract.__name__} in tests/runners or tests/storage"
    )
