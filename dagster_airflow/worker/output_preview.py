"""What the step view shows of an output without loading it: its type, size and a short repr.

The worker computes it as it stores the output (it has the value in hand) and writes it into the
step's event log. Whoever shows it later (the Airflow UI plugin, on the api-server) reads that
text and never unpickles the object: unpickling runs code of the pickle's choosing.

The step's secrets are redacted from each string and each object's repr before it is cut to
length: cut first, a secret could be left in part on either side of the cut.
"""

from __future__ import annotations

import builtins
import reprlib
from collections.abc import Callable
from typing import Any

PREVIEW_CHARS = 600


class _PreviewRepr(reprlib.Repr):
    def __init__(self, redact: Callable[[str], str] | None) -> None:
        super().__init__()
        self.redact = redact or (lambda text: text)
        self.maxlevel = 3
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = self.maxdeque = 20
        self.maxdict = 20
        self.maxstring = 200
        self.maxlong = 60
        self.maxother = PREVIEW_CHARS

    def repr_str(self, x: str, level: int) -> str:
        return super().repr_str(self.redact(x), level)

    def repr_instance(self, x: Any, level: int) -> str:
        try:
            text = self.redact(builtins.repr(x))
        except Exception:  # as reprlib does for a user's __repr__ that raises
            return f"<{type(x).__name__} instance at {id(x):#x}>"
        if len(text) > self.maxother:
            i = max(0, (self.maxother - 3) // 2)
            j = max(0, self.maxother - 3 - i)
            text = text[:i] + "..." + text[len(text) - j :]
        return text


def type_name(value: Any) -> str:
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def preview_text(value: Any, redact: Callable[[str], str] | None = None) -> str:
    """A repr of the value, cut to PREVIEW_CHARS (reprlib trims long containers and strings
    first, so the size of the value does not matter), with ``redact`` applied to every part."""
    try:
        text = _PreviewRepr(redact).repr(value)
    except Exception as exc:  # a user's __repr__ may raise: the output is stored all the same
        return f"<repr of {type_name(value)} failed: {type(exc).__name__}: {exc}>"
    if len(text) > PREVIEW_CHARS:
        text = text[: PREVIEW_CHARS - 3] + "..."
    return text


def output_preview(
    value: Any, size: int, redact: Callable[[str], str] | None = None
) -> dict[str, Any]:
    """The metadata the worker records for a stored output: type, size in bytes, preview."""
    return {"type": type_name(value), "size": size, "preview": preview_text(value, redact)}
