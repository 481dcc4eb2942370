"""The scaffold's last step before writing: compile the DAG file's text, and evaluate its values
back (without running it) to check they are the values meant.

Values are read statically: literals, module-level names bound to them, subscripts of those, and
calls (``Param(...)``, ``Asset(...)``) as their arguments. An expectation is a path from a
module-level name (``("DEFAULT_ARGS", "run_config")``, ``("PARAMS", "ops", "default")``), or
``("DAG", keyword)`` for the DAG's own arguments. Task and task group ids are read from every
call that names one, and must be unique.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

import attrs

from dagster_airflow.errors import ConfigurationError


class _Unreadable(Exception):
    """A node that is not plain data."""


@attrs.frozen
class _Called:
    """A call such as ``Param(default, **schema)``, as its callee's name and arguments."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def get(self, key: str) -> Any:
        if key == "default" and self.args:
            return self.args[0]
        if key in self.kwargs:
            return self.kwargs[key]
        raise _Unreadable(f"{self.name}() has no argument {key!r}")


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


class _Module:
    """A module's text, its module-level names evaluated on demand."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.assigned = {
            node.targets[0].id: node.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        }
        self.evaluating: set[str] = set()

    def name(self, name: str) -> Any:
        if name not in self.assigned or name in self.evaluating:
            raise _Unreadable(f"{name} is not a module-level value")
        self.evaluating.add(name)
        try:
            return self.value(self.assigned[name])
        finally:
            self.evaluating.discard(name)

    def value(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Dict):
            found: dict[Any, Any] = {}
            for key, item in zip(node.keys, node.values, strict=True):
                if key is None:
                    found.update(self.value(item))
                else:
                    found[self.value(key)] = self.value(item)
            return found
        if isinstance(node, ast.List | ast.Tuple):
            return [self.value(e) for e in node.elts]
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.Subscript):
            return self.value(node.value)[self.value(node.slice)]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            operand = self.value(node.operand)
            if isinstance(operand, int | float) and not isinstance(operand, bool):
                return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Call):
            kwargs: dict[str, Any] = {}
            for keyword in node.keywords:
                if keyword.arg is None:
                    kwargs.update(self.value(keyword.value))
                else:
                    kwargs[keyword.arg] = self.value(keyword.value)
            return _Called(_dotted(node.func), tuple(self.value(a) for a in node.args), kwargs)
        raise _Unreadable(f"{ast.dump(node)[:60]} is not plain data")

    def dag_call(self) -> _Called:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call) and _dotted(node.func) == "DAG":
                return _Called("DAG", (), {k.arg: k.value for k in node.keywords if k.arg})
        raise _Unreadable("there is no DAG(...) call")

    def at(self, path: tuple[Any, ...]) -> Any:
        if path[0] == "DAG":
            return self.value(self.dag_call().get(path[1]))
        found = self.name(path[0])
        for part in path[1:]:
            found = found.get(part) if isinstance(found, _Called) else found[part]
        return found

    def ids(self) -> list[str]:
        """Every task id and task group id the file gives, in order."""
        found = []
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if keyword.arg in ("task_id", "group_id"):
                        found.append(self.value(keyword.value))
        return found


def same(a: Any, b: Any) -> bool:
    """Equal as data, with a type check that ``==`` lacks (True is not 1, 1.0 is not 1); a
    tuple and a list with the same items are the same (the file writes lists)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def check_dag_text(
    text: str,
    job_name: str,
    expected: Mapping[tuple[Any, ...], Any],
    task_ids: Mapping[str, str],
    docstring: str,
) -> None:
    """Raise unless ``text`` compiles, its docstring is ``docstring``, every expectation path
    holds its value, and its operators are ``task_ids`` (task id -> step key), each id once."""
    try:
        tree = ast.parse(text)
        compile(tree, "<dag>", "exec")
        module = _Module(tree)
        wrong = [path for path, value in expected.items() if not same(module.at(path), value)]
        if ast.get_docstring(tree, clean=False) != docstring:
            wrong.append(("the docstring",))
        ids = module.ids()
        if len(ids) != len(set(ids)):
            wrong.append(("a task id given twice",))
        written = {}  # the step key is written where it is not the task id
        for node in ast.walk(tree):
            task_id = _keyword(node, "task_id") if isinstance(node, ast.Call) else None
            if task_id is not None and _keyword(node, "ends_dagster_run") is None:
                step_key = _keyword(node, "step_key") or task_id
                written[module.value(task_id)] = module.value(step_key)
        if written != dict(task_ids):
            wrong.append(("the task ids",))
    except (SyntaxError, ValueError, _Unreadable, KeyError, IndexError, TypeError) as exc:
        wrong = [(f"{type(exc).__name__}: {exc}",)]
    if wrong:
        shown = ", ".join("/".join(str(p) for p in path) for path in wrong)
        raise ConfigurationError(
            f"the DAG file written for job {job_name!r} would not hold what was meant ({shown}); "
            "nothing was written: this is a bug in dagster-airflow, please report it with the "
            "scaffold command."
        )


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)
