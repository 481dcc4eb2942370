"""Which DAG ids the Python files of a dags folder define, read without importing Airflow or
running the files: the literal ids of ``DAG("x")``, ``DAG(dag_id="x")``, ``@dag(dag_id="x")``,
``@dag("x")`` and a bare ``@dag`` (its function's name), at any depth of the folder.

An id that is computed (an f-string, a loop) cannot be read this way and is not reported.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from dagster_airflow.errors import ConfigurationError


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _literal_id(call: ast.Call) -> str | None:
    for keyword in call.keywords:
        if keyword.arg == "dag_id":
            value = keyword.value
            return value.value if isinstance(value, ast.Constant) else None
    if call.args and isinstance(call.args[0], ast.Constant):
        return call.args[0].value
    return ""  # no id given: a @dag() takes its function's name


def dag_ids_in(tree: ast.AST) -> set[str]:
    """The literal DAG ids a module's syntax tree defines."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) == "DAG":
            dag_id = _literal_id(node)
            if dag_id:
                found.add(dag_id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                if _name(decorator) == "dag":
                    found.add(node.name)  # @dag
                elif isinstance(decorator, ast.Call) and _name(decorator.func) == "dag":
                    dag_id = _literal_id(decorator)
                    if dag_id is not None:
                        found.add(dag_id or node.name)
    return {d for d in found if isinstance(d, str)}


# More entries than any dags folder holds: a folder that is not one (``/``) is refused, not read.
MAX_ENTRIES = 200_000


def python_files(folder: Path) -> list[Path]:
    """The .py files under ``folder``, at any depth, following links as Airflow does (each
    folder once)."""
    seen: set[tuple[int, int]] = set()
    found = []
    entries = 0
    for root, dirs, files in os.walk(folder, followlinks=True):
        entries += len(dirs) + len(files)
        if entries > MAX_ENTRIES:
            raise ConfigurationError(
                f"the dags folder {str(folder)!r} holds more than {MAX_ENTRIES} files and "
                "folders, too many to look for the DAG id in; pass --dags-folder with Airflow's "
                "dags folder."
            )
        stat = os.stat(root)
        if (stat.st_dev, stat.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((stat.st_dev, stat.st_ino))
        dirs.sort()
        found += [Path(root, name) for name in sorted(files) if name.endswith(".py")]
    return found


def dag_ids_by_file(folder: Path) -> dict[Path, set[str]]:
    """Each .py file under ``folder`` that defines a DAG id, with the ids. A file that cannot be
    read or parsed (Airflow would report it as an import error) is skipped."""
    found = {}
    for path in python_files(folder):
        try:
            data = path.read_bytes()
            if b"dag" not in data.lower():  # no DAG(...) nor @dag: skip parsing it
                continue
            tree = ast.parse(data, filename=str(path))
        except (OSError, SyntaxError, ValueError, RecursionError):
            continue
        ids = dag_ids_in(tree)
        if ids:
            found[path] = ids
    return found
