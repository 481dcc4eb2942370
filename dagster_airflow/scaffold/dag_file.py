"""The one reader of scaffolded DAG files: a file's text parsed (ast, never imported) into what
`check`, `results` and `install` need from it. The scaffold (render.py) is its only writer."""

from __future__ import annotations

import ast
from typing import Any

import attrs

from dagster_airflow.errors import ConfigurationError

# Task arguments the scaffold writes from a Dagster retry policy.
RETRY_ARGUMENTS = ("retries", "retry_delay", "retry_exponential_backoff", "max_retry_delay")
# Task arguments the scaffold writes from an op's concurrency pool and priority.
CONTROL_ARGUMENTS = ("pool", "priority_weight")
# The first line of every file the scaffold writes.
SCAFFOLD_MARK = "scaffolded by dagster-airflow"


@attrs.frozen
class DagText:
    """What a DAG file declares, read from its text."""

    dag_id: str | None  # the DAG(dag_id=...) constant
    has_dag: bool  # a `with DAG(...)` block
    # DEFAULT_ARGS, RUN_CONFIG_SCHEMA, RUN_CONFIG, ENVIRONMENT; names and calls as their text
    literals: dict[str, Any]
    default_args: dict[str, Any] | None  # DEFAULT_ARGS's literal values only (None: no dict)
    steps: dict[str, tuple[str, ...]]  # step key -> the step keys upstream of it
    step_keys: tuple[str, ...]  # every DagsterOperator's step key, in the file's order
    retries: dict[str, dict[str, str]]  # step key -> retry argument -> its source text
    controls: dict[str, dict[str, str]]  # step key -> pool / priority_weight -> source text
    dag_arguments: dict[str, str]  # the DAG call's arguments, as their source text
    schedule: str
    start_date: str
    partition: str  # the partition param's source text ("" when none)
    asset_uri_template: str | None  # ASSET_URI_TEMPLATE (None: not stated)

    @property
    def job(self) -> tuple[object, object] | None:
        """The job name and code location DEFAULT_ARGS names."""
        if self.default_args is None:
            return None
        return self.default_args.get("job_name"), self.default_args.get("code_location")


def parse_dag_text(text: str, where: str) -> DagText:
    """The declarations of a DAG file's text; one sentence naming `where` when it is not
    Python."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError) as exc:
        line = f"line {exc.lineno}: {exc.msg}" if isinstance(exc, SyntaxError) else str(exc)
        raise ConfigurationError(
            f"{where} is not valid Python ({line}); fix it or scaffold it again."
        ) from exc
    found = _Declarations(text)
    for node in ast.walk(tree):
        found.visit(node)
    for node in ast.walk(tree):
        found.edges(node)
    dag_arguments = (
        {k.arg: k.value for k in found.dag_call.keywords if k.arg} if found.dag_call else {}
    )
    return DagText(
        dag_id=found.dag_id,
        has_dag=found.dag_call is not None,
        literals=found.literals,
        default_args=_default_args(tree),
        steps={k: tuple(sorted(v)) for k, v in found.upstream.items()},
        step_keys=tuple(sorted(set(found.step_keys), key=found.step_keys.index)),
        retries=found.retries,
        controls=found.controls,
        dag_arguments={k: _source(text, v) for k, v in dag_arguments.items()},
        schedule=_source(text, dag_arguments.get("schedule")),
        start_date=_source(text, dag_arguments.get("start_date")),
        partition=found.partition,
        asset_uri_template=found.asset_uri_template,
    )


class _Declarations:
    """What one walk over a DAG file's tree collects."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.literals: dict[str, Any] = {}
        self.names: dict[str, str] = {}  # variable -> step key
        self.retries: dict[str, dict[str, str]] = {}
        self.controls: dict[str, dict[str, str]] = {}
        self.upstream: dict[str, set[str]] = {}
        self.step_keys: list[str] = []
        self.dag_call: ast.Call | None = None
        self.dag_id: str | None = None
        self.partition = ""
        self.asset_uri_template: str | None = None

    def visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            self._assign(node.targets[0].id, node.value)
        elif isinstance(node, ast.With):
            for item in node.items:
                if isinstance(item.context_expr, ast.Call) and _called(item.context_expr) == "DAG":
                    self.dag_call = item.context_expr
        elif isinstance(node, ast.Call):
            self._call(node)

    def _assign(self, target: str, value: ast.AST) -> None:
        if target in ("DEFAULT_ARGS", "RUN_CONFIG_SCHEMA", "RUN_CONFIG", "ENVIRONMENT"):
            self.literals[target] = _literal_value(self.text, value)
        elif target == "ASSET_URI_TEMPLATE" and isinstance(value, ast.Constant):
            self.asset_uri_template = value.value
        elif target == "PARAMS" and isinstance(value, ast.Dict):
            for key, item in zip(value.keys, value.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "partition":
                    self.partition = _source(self.text, item)
        elif isinstance(value, ast.Call) and _called(value) == "DagsterOperator":
            arguments = {k.arg: k.value for k in value.keywords if k.arg}
            if "schedule" in arguments:  # the schedule's tick task: no step
                return
            # The step key is written only where it is not the task id.
            step_key = ast.literal_eval(arguments.get("step_key", arguments["task_id"]))
            self.names[target] = step_key
            self.upstream.setdefault(step_key, set())
            self.retries[step_key] = {
                name: _source(self.text, arguments[name])
                for name in RETRY_ARGUMENTS
                if name in arguments
            }
            self.controls[step_key] = {
                name: _source(self.text, arguments[name])
                for name in CONTROL_ARGUMENTS
                if name in arguments
            }

    def _call(self, node: ast.Call) -> None:
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
        given = {k.arg: k.value.value for k in node.keywords if isinstance(k.value, ast.Constant)}
        if name == "DAG" and "dag_id" in given and self.dag_id is None:
            self.dag_id = given["dag_id"]
        elif name == "DagsterOperator" and "ends_dagster_run" in given:
            pass  # the DAG's end task runs no step (scaffold --dagster-home)
        elif (
            name == "DagsterOperator"
            and "schedule" not in given
            and ("step_key" in given or "task_id" in given)
        ):
            # The step key is written only where it is not the task id.
            self.step_keys.append(given.get("step_key", given.get("task_id")))

    def edges(self, node: ast.AST) -> None:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.RShift):
            ups = _operands(node.left)
            for down in _operands(node.right):
                for up in ups:
                    if up in self.names and down in self.names:
                        self.upstream[self.names[down]].add(self.names[up])


def _default_args(tree: ast.Module) -> dict[str, Any] | None:
    """DEFAULT_ARGS's literal values (a timedelta and the like are not ours: left out)."""
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "DEFAULT_ARGS"
            and isinstance(node.value, ast.Dict)
        ):
            found = {}
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                try:
                    found[ast.literal_eval(key)] = ast.literal_eval(value)
                except (ValueError, TypeError):
                    continue
            return found
    return None


def _source(text: str, node: ast.AST | None) -> str:
    return ast.get_source_segment(text, node) or "" if node is not None else ""


def _called(call: ast.Call) -> str:
    return call.func.id if isinstance(call.func, ast.Name) else ""


def _operands(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.List | ast.Tuple):
        return [e.id for e in node.elts if isinstance(e, ast.Name)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.RShift):
        return _operands(node.right)  # a >> b >> c: the right end feeds what follows
    return []


def _literal_value(text: str, node: ast.AST) -> Any:
    """A literal as data; a name or a call inside it (RUN_CONFIG_SCHEMA, timedelta) as its text."""
    if isinstance(node, ast.Dict):
        return {
            ast.literal_eval(k): _literal_value(text, v)
            for k, v in zip(node.keys, node.values, strict=True)
            if k is not None
        }
    try:
        return ast.literal_eval(node)
    except ValueError:
        return _source(text, node)
