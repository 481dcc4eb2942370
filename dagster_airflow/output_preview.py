"""What the step view shows of an output without loading it: its type, size and a short repr.

The worker computes it as it stores the output (it has the value in hand) and writes it into the
step's event log. Whoever shows it later (the Airflow UI plugin, on the api-server) reads that
text and never unpickles the object: unpickling runs code of the pickle's choosing.
"""

from __future__ import annotations

import reprlib
from typing import Any

PREVIEW_CHARS = 600

_repr = reprlib.Repr()
_repr.maxlevel = 3
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxfrozenset = _repr.maxdeque = 20
_repr.maxdict = 20
_repr.maxstring = 200
_repr.maxlong = 60
_repr.maxother = PREVIEW_CHARS


def type_name(value: Any) -> str:
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def preview_text(value: Any) -> str:
    """A repr of the value, cut to PREVIEW_CHARS (reprlib trims long containers and strings
    first, so the size of the value does not matter)."""
    try:
        text = _repr.repr(value)
    except Exception as exc:  # a user's __repr__ may raise: the output is stored all the same
        return f"<repr of {type_name(value)} failed: {type(exc).__name__}: {exc}>"
    if len(text) > PREVIEW_CHARS:
        text = text[: PREVIEW_CHARS - 3] + "..."
    return text


def output_preview(value: Any, size: int) -> dict[str, Any]:
    """The metadata the worker records for a stored output: type, size in bytes, preview."""
    return {"type": type_name(value), "size": size, "preview": preview_text(value)}
