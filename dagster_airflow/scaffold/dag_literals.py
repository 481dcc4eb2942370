"""Python string literals for a DAG file, whatever the text: the scaffold writes values, never code.

A value reaches the DAG file from the command line, a run config file, the job's definitions or
a file name. Any of them may hold quotes, backslashes, newlines, NUL, U+2028, a lone surrogate
(a file name that is not UTF-8) or bidirectional controls. ``string_literal`` escapes every
character that is not printable, so the file stays plain printable text and each literal
evaluates back to exactly its string.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from dagster_airflow.errors import ConfigurationError

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def string_literal(text: str) -> str:
    """A double-quoted Python literal of ``text``: printable characters as they are, every
    other one escaped (U+2028, NUL, a lone surrogate ...)."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return '"' + "".join(_escaped(c) for c in text) + '"'


def block_literal(text: str) -> str:
    """A triple-quoted literal of ``text`` (Markdown, for reading in the file) when that is
    provably the same string, else ``string_literal``."""
    safe = (
        text.endswith("\n")
        and '"""' not in text
        and "\\" not in text
        and all(line.isprintable() for line in text.split("\n"))
    )
    return f'"""\\\n{text}"""' if safe else string_literal(text)


def check_writable(value: Any, what: str, path: str = "") -> None:
    """Refuse, in one sentence naming where, a value a DAG file cannot hold as JSON-like data:
    a number that is not finite (Airflow keeps default args and params as JSON, which has no
    infinity or NaN), or a value of another type (a date, bytes, a set)."""
    where = f" at {path}" if path else ""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigurationError(
            f"the number {value!r}{where} of {what} cannot be written into a DAG file (Airflow "
            "keeps its default args and params as JSON, which has no infinity or NaN); use a "
            "finite number, or a string that the op converts."
        )
    if value is None or isinstance(value, str | bool | int | float):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            check_writable(key, what, path)
            check_writable(item, what, f"{path}.{key}" if path else str(key))
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_writable(item, what, f"{path}[{index}]")
        return
    raise ConfigurationError(
        f"the value {value!r} ({type(value).__name__}){where} of {what} cannot be written into a "
        "DAG file; use strings, numbers, booleans, lists and mappings (quote a date as a string)."
    )


def call(prefix: str, function: str, kwargs: Sequence[str], suffix: str = "") -> str:
    """``prefix + function(kwargs) + suffix`` at the indent of ``prefix``, laid out as ruff format
    would: on one line when it fits, else the arguments on one line of their own, else one a
    line."""
    indent = " " * (len(prefix) - len(prefix.lstrip()))
    flat = f"{prefix}{function}({', '.join(kwargs)}){suffix}"
    if len(flat) <= 99:
        return flat
    inner = f"{indent}    {', '.join(kwargs)}"
    if len(inner) <= 99:
        return f"{prefix}{function}(\n{inner}\n{indent}){suffix}"
    lines = "".join(f"{indent}    {k},\n" for k in kwargs)
    return f"{prefix}{function}(\n{lines}{indent}){suffix}"


def literal(value: object, indent: int = 4, column: int = 0, width: int = 99) -> str:
    """A Python literal for JSON-like data, laid out as ruff format would: on one line when it
    fits, else one item a line."""
    if isinstance(value, str):
        return string_literal(value)
    if (
        value is None
        or isinstance(value, bool | int)
        or (isinstance(value, float) and math.isfinite(value))
    ):
        return repr(value)
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            key = f"{literal(k)}: "
            items.append(key + literal(v, indent + 4, indent + 4 + len(key), width))
        start, end = "{", "}"
    elif isinstance(value, list | tuple):
        items = [literal(v, indent + 4, indent + 4, width) for v in value]
        start, end = "[", "]"
    else:
        raise ConfigurationError(
            f"cannot write {value!r} ({type(value).__name__}) into a DAG file; run config and "
            "backend options must be strings, numbers, booleans, lists and mappings."
        )
    flat = start + ", ".join(items) + end
    if column + len(flat) + 1 <= width and "\n" not in flat:
        return flat
    pad = " " * (indent + 4)
    return start + "\n" + "".join(f"{pad}{item},\n" for item in items) + " " * indent + end
