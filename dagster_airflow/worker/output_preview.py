"""What the step view shows of an output without loading it: its type, size and a short repr.

The worker computes it as it stores the output (it has the value in hand) and writes it into the
step's event log. Whoever shows it later (the Airflow UI plugin, on the api-server) reads that
text and never unpickles the object: unpickling runs code of the pickle's choosing.

The step's secrets are redacted from each string and each object's repr before it is cut to
length: cut first, a secret could be left in part on either side of the cut.

Whatever the value's size, the preview reads a bounded part of it: a long str, bytes or
bytearray is shown by its two ends, each redacted from a window a little longer than what is
kept, so that a 300 MiB output is never repr'd, copied or redacted whole. (A class's own
__repr__ is called as it is: only its result is cut.)
"""

from __future__ import annotations

import builtins
import reprlib
from collections.abc import Callable
from typing import Any

PREVIEW_CHARS = 600
# How far past what a preview keeps it redacts, when the redactor does not say how long its
# longest secret is.
UNKNOWN_SECRET_CHARS = 64 * 1024
# The most a repr puts around a window's characters: "bytearray(b'" and "')".
_REPR_FRAME = 16


def _margin(redact: Callable[[str], str] | None) -> int:
    """How many characters at a window's edge may hold a piece of a secret that the edge cut
    (so redaction left it): the longest secret (a redaction.Redactor's bound ``text`` says),
    plus the repr's quotes and prefix."""
    if redact is None:
        return _REPR_FRAME
    longest = getattr(getattr(redact, "__self__", None), "longest", None)
    return (UNKNOWN_SECRET_CHARS if longest is None else longest) + _REPR_FRAME


def _cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters in the middle, as reprlib cuts a string."""
    if len(text) <= limit:
        return text
    i = max(0, (limit - 3) // 2)
    j = max(0, limit - 3 - i)
    return text[:i] + "..." + text[len(text) - j :]


class _PreviewRepr(reprlib.Repr):
    def __init__(self, redact: Callable[[str], str] | None) -> None:
        super().__init__()
        self.redact = redact or (lambda text: text)
        self.margin = _margin(redact)
        self.maxlevel = 3
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = self.maxdeque = 20
        self.maxdict = 20
        self.maxstring = 200
        self.maxlong = 60
        self.maxother = PREVIEW_CHARS

    def repr_str(self, x: str, level: int) -> str:
        return self._ends(x)

    def repr_bytes(self, x: bytes, level: int) -> str:
        return self._ends(x)

    def repr_bytearray(self, x: bytearray, level: int) -> str:
        return self._ends(x)

    def _ends(self, x: str | bytes | bytearray) -> str:
        """The repr of a sequence of characters or bytes, redacted, then cut to ``maxstring`` in
        the middle. A long one is not repr'd whole: each end comes from a window of it."""
        limit = self.maxstring
        if len(x) <= 2 * (limit + self.margin):
            return _cut(self.redact(builtins.repr(x)), limit)
        i = max(0, (limit - 3) // 2)
        j = max(0, limit - 3 - i)
        return self._end(x, i, head=True) + "..." + self._end(x, j, head=False)

    def _end(self, x: str | bytes | bytearray, keep: int, head: bool) -> str:
        """``keep`` characters of the redacted repr of x's head (or tail). The window grows
        until its redacted repr has ``margin`` characters beyond those kept: a secret the
        window's edge cut lies within those, so none of it is kept."""
        size = keep + self.margin
        while True:
            window = x[:size] if head else x[len(x) - size :]
            text = self.redact(builtins.repr(window))
            if len(text) >= keep + self.margin or size >= len(x):
                break
            size *= 2
        return text[:keep] if head else text[len(text) - keep :]

    def repr_instance(self, x: Any, level: int) -> str:
        try:
            text = self.redact(builtins.repr(x))
        except Exception:  # as reprlib does for a user's __repr__ that raises
            return f"<{type(x).__name__} instance at {id(x):#x}>"
        return _cut(text, self.maxother)


def type_name(value: Any) -> str:
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def preview_text(value: Any, redact: Callable[[str], str] | None = None) -> str:
    """A repr of the value, cut to PREVIEW_CHARS (reprlib trims long containers, and long
    strings and bytes are read only at their ends, so the size of the value does not matter),
    with ``redact`` applied to every part."""
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
