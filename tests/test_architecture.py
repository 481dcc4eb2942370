"""The house's one table: which folder of the package may import which (docs/architecture.md).

Every import of every module is checked, those inside functions and under TYPE_CHECKING too
(an ast walk, nothing is imported). The sys.modules checks (importing a side loads neither
Airflow nor Dagster when it must not) are in tests/test_boundaries.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dagster_airflow"
ENTRY_POINTS = {"__init__", "__main__", "cli", "operator"}  # cli/ is a folder of entry points

# Folder -> the folders it may import ("wire": the root's plain-data modules and the two
# stdlib helpers both sides share, redaction and reaper). Lower rows never import higher ones.
ALLOWED: dict[str, set[str]] = {
    "wire": set(),
    "plugins": {"wire"},
    "storage": {"wire", "plugins"},
    "job": {"wire"},
    "worker": {"wire", "plugins", "storage", "job"},
    "scaffold": {"wire", "plugins", "storage", "job"},
    "step_server": {"wire", "plugins", "job", "worker"},
    "runners": {"wire", "plugins", "storage", "step_server"},
    "task": {"wire", "plugins", "storage", "runners"},
    "ui": {"wire", "plugins", "storage", "task"},
    "testing": {"wire", "plugins", "storage", "job", "worker", "scaffold", "step_server"}
    | {"runners", "task"},
    "entry": {"wire", "plugins", "storage", "job", "worker", "scaffold", "step_server"}
    | {"runners", "task", "ui", "testing"},
}
NO_AIRFLOW = {"wire", "plugins", "storage", "job", "worker", "scaffold"}
NO_DAGSTER = {"wire", "plugins", "storage", "runners", "task", "ui"}

# Module -> imported module: the edges the table does not allow yet, each with its way out.
# test_every_exception_is_still_needed fails once one is gone: delete it here then.
EXCEPTIONS: set[tuple[str, str]] = set()


def folder_of(module: str) -> str:
    """ "job.compile" -> "job"; a root module -> "wire" or "entry"."""
    head, _, rest = module.partition(".")
    if head in ENTRY_POINTS:
        return "entry"
    if rest or (PACKAGE / head / "__init__.py").exists():
        return head
    return "entry" if head in ENTRY_POINTS or head == "" else "wire"


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)
        found[name] = path
    return found


def imports_of(path: Path) -> list[str]:
    """Every module an import statement in the file names, wherever the statement is."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import"
            names.append(node.module)
            if node.module == "dagster_airflow":
                names += [f"dagster_airflow.{alias.name}" for alias in node.names]
    return names


def ours(name: str) -> str | None:
    """ "dagster_airflow.job.compile" -> "job.compile"; None for another package."""
    if name == "dagster_airflow":
        return "__init__"
    if name.startswith("dagster_airflow."):
        return name.removeprefix("dagster_airflow.")
    return None


MODULES = modules()


@pytest.mark.parametrize("module", list(MODULES))
def test_every_import_is_allowed_by_the_table(module):
    side = folder_of(module)
    wrong = []
    for name in imports_of(MODULES[module]):
        top = name.split(".")[0]
        if top == "airflow" and side in NO_AIRFLOW:
            wrong.append(f"{name} (the {side} never imports Airflow)")
        if top == "dagster" and side in NO_DAGSTER:
            wrong.append(f"{name} (the {side} never imports Dagster)")
        target = ours(name)
        if target is None or target in ("__version__", "hookimpl"):
            continue
        other = folder_of(target) if target in MODULES or "." in target else "wire"
        if target in ("__init__",) or other in (side, *ALLOWED[side]):
            continue
        if (module, target) not in EXCEPTIONS:
            wrong.append(f"{name} ({side} may not import {other})")
    assert not wrong, f"dagster_airflow.{module} imports {wrong}"


def test_every_exception_is_still_needed():
    edges = {(module, ours(name)) for module, path in MODULES.items() for name in imports_of(path)}
    assert edges >= EXCEPTIONS, f"no longer imported, remove: {EXCEPTIONS - edges}"


def test_the_table_has_no_circle_and_every_folder_is_in_it():
    done: list[str] = []
    while len(done) < len(ALLOWED):
        ready = [f for f in ALLOWED if f not in done and ALLOWED[f] <= set(done)]
        assert ready, f"a circle among {set(ALLOWED) - set(done)}"
        done += ready
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()} - ENTRY_POINTS
    assert folders <= set(ALLOWED), folders - set(ALLOWED)


def test_no_two_modules_import_each_other():
    edges = {
        (module, target)
        for module, path in MODULES.items()
        for target in map(ours, imports_of(path))
        if target in MODULES and target != module  # a package naming its own modules
    }
    circles = {(a, b) for a, b in edges if (b, a) in edges}
    assert not circles - EXCEPTIONS - {(b, a) for a, b in EXCEPTIONS}


@pytest.mark.parametrize("module", list(MODULES))
def test_every_import_of_ours_names_a_module_that_exists(module):
    """A module moved by the house keeps no caller on its old path (a lazy import inside a
    function fails only when it runs)."""
    import dagster_airflow

    missing = [
        name
        for name in imports_of(MODULES[module])
        if ours(name) is not None
        and ours(name) not in MODULES
        and not (name.count(".") == 1 and hasattr(dagster_airflow, ours(name)))
    ]
    assert not missing, f"dagster_airflow.{module} imports what is not there: {missing}"


# The one module per side that holds what differs between the versions we support
# (docs/install.md, "Supported versions"): a new Dagster minor changes job/dagster_compat.py only.
DAGSTER_COMPAT = "job.dagster_compat"
AIRFLOW_COMPAT = "task.airflow_compat"


def test_only_the_dagster_compat_module_imports_private_dagster_apis():
    private = {
        module: sorted(n for n in imports_of(path) if n.startswith("dagster._"))
        for module, path in MODULES.items()
        if module != DAGSTER_COMPAT
    }
    found = {module: names for module, names in private.items() if names}
    assert not found, f"import these from dagster_airflow.{DAGSTER_COMPAT} instead: {found}"
    assert any(n.startswith("dagster._") for n in imports_of(MODULES[DAGSTER_COMPAT]))


# Airflow moved these between 3.1 and 3.3: only the compat module names their homes.
AIRFLOW_MOVED = (
    "airflow.sdk.exceptions",
    "airflow.exceptions",
    "airflow.sdk.configuration",
    "airflow.configuration",
    "airflow.sdk.definitions.retry_policy",
    "airflow.timetables",
)


def test_only_the_airflow_compat_module_imports_what_airflow_moved_between_versions():
    found = {
        module: names
        for module, path in MODULES.items()
        if module != AIRFLOW_COMPAT
        and (names := [n for n in imports_of(path) if n.startswith(AIRFLOW_MOVED)])
    }
    assert not found, f"import these from dagster_airflow.{AIRFLOW_COMPAT} instead: {found}"
