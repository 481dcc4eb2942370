"""Finds the code location in a project directory, as `dagster job execute` does with no -f/-m/-w.

Dagster 1.13 (dagster/_cli/workspace/cli_target.py, ``_get_workspace_load_target_from_cli_opts``)
looks, in this order, at:

1. ``pyproject.toml`` with a ``[tool.dagster]`` block (``module_name`` or a ``modules`` list,
   with ``code_location_name``) or a ``dg`` project's ``[tool.dg.project]`` block (its
   ``root_module``'s ``definitions`` module, or ``code_location_target_module``);
2. ``workspace.yaml``;
3. ``workspace.yml``.

Module targets import from the directory itself, as Dagster's do (its ``os.getcwd()``). What is
found becomes explicit code locations with absolute paths, so the scaffolded DAG file names it.
"""

from __future__ import annotations

from pathlib import Path

from dagster_airflow.errors import CodeLocationError
from dagster_airflow.model import CodeLocation

WORKSPACE_FILES = ("workspace.yaml", "workspace.yml")
LOOKED_FOR = (
    "a pyproject.toml with [tool.dagster] or [tool.dg.project], a workspace.yaml or a workspace.yml"
)


def _toml(path: Path) -> dict | None:
    import tomllib

    try:
        with path.open("rb") as stream:
            data = tomllib.load(stream)
    except FileNotFoundError:
        return None
    except tomllib.TOMLDecodeError as exc:
        raise CodeLocationError(f"{str(path)!r} is not valid TOML: {exc}; fix it.") from exc
    except UnicodeDecodeError as exc:
        raise CodeLocationError(
            f"{str(path)!r} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}); save it as UTF-8."
        ) from None
    return data if isinstance(data, dict) else None


def _has_dagster_block(data: dict | None) -> bool:
    """Dagster's has_pyproject_dagster_block: a [tool.dagster] or a [tool.dg] table."""
    tool = (data or {}).get("tool", {})
    return isinstance(tool, dict) and ("dagster" in tool or "dg" in tool)


def _from_pyproject(path: Path, data: dict) -> list[CodeLocation]:
    """The module code locations of a pyproject.toml, as Dagster's get_target_from_toml_data."""
    directory = str(path.parent)
    tool = data["tool"]
    dagster = tool.get("dagster") or {}
    name = dagster.get("code_location_name")
    if "module_name" in dagster:
        return [
            CodeLocation(
                module_name=dagster["module_name"],
                working_directory=directory,
                location_name=name,
            )
        ]
    if "modules" in dagster:
        modules = dagster["modules"]
        if not isinstance(modules, list) or not all(
            isinstance(m, dict) and isinstance(m.get("name"), str) for m in modules
        ):
            raise CodeLocationError(
                f"[tool.dagster] modules in {str(path)!r} must be a list of tables with a "
                f"'type' and a 'name', got {modules!r}; write "
                '[{type = "module", name = "my_package.definitions"}].'
            )
        return [
            CodeLocation(module_name=m["name"], working_directory=directory, location_name=name)
            for m in modules
            if m.get("type") == "module"
        ]
    project = (tool.get("dg") or {}).get("project") or {}
    if project:
        root = project.get("root_module")
        if not isinstance(root, str) or not root:
            raise CodeLocationError(
                f"[tool.dg.project] in {str(path)!r} has no root_module; set it to the "
                "project's top-level package, as `dg scaffold project` writes it."
            )
        if project.get("autoload_defs"):
            raise CodeLocationError(
                f"[tool.dg.project] in {str(path)!r} sets autoload_defs, which dagster-airflow "
                f"cannot load; add {root}/definitions.py with "
                f"`defs = dg.load_from_defs_folder(...)` and pass -m {root}.definitions."
            )
        module = project.get("code_location_target_module") or f"{root}.definitions"
        return [
            CodeLocation(
                module_name=module,
                working_directory=directory,
                location_name=project.get("code_location_name"),
            )
        ]
    return []


def discover(directory: Path | None = None) -> tuple[list[CodeLocation], Path]:
    """The code locations a project directory declares, and the file that declares them.

    Raises CodeLocationError in one sentence when there is none.
    """
    directory = (directory or Path.cwd()).absolute()
    pyproject = directory / "pyproject.toml"
    data = _toml(pyproject)
    if _has_dagster_block(data):
        found = _from_pyproject(pyproject, data)
        if not found:
            raise CodeLocationError(
                f"{str(pyproject)!r} has a [tool.dagster] or [tool.dg] block that names no "
                "code location; set module_name (and code_location_name) in [tool.dagster], "
                "or pass -f, -m or -w."
            )
        return found, pyproject
    for name in WORKSPACE_FILES:
        workspace = directory / name
        if workspace.is_file():
            return [CodeLocation(workspace=str(workspace))], workspace
    raise CodeLocationError(
        f"no code location found in {str(directory)!r}: looked for {LOOKED_FOR}; run the "
        "scaffold from your project's directory, or pass -f FILE.py, -m MODULE or "
        "-w workspace.yaml."
    )
