"""A followed log stream, read in a thread of its own (Airflow side, no SDK import).

What a remote runner whose platform streams a step's output (a container's log, a Kubernetes
pod's ``follow=True`` log) hands the lifecycle: ``read(wait)`` returns the lines that arrived,
waiting up to ``wait`` seconds for the first (RemoteRunner.output_waits), so lines reach the
task log as they come while the lifecycle still polls the run's state.
"""

from __future__ import annotations

import codecs
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

_END = object()  # the stream ended


def decode_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Lines from a stream of byte chunks that may split lines and UTF-8 characters anywhere."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    for chunk in chunks:
        pending += decoder.decode(chunk)
        *lines, pending = pending.split("\n")
        yield from lines
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


class LineStream:
    """The lines of a stream of byte chunks, pumped by a daemon thread into a queue.

    ``ended`` once the stream ended (or failed: ``read`` raises its error once); ``count`` the
    lines read so far, so that a caller who falls back to the whole log can skip them.
    """

    def __init__(self, chunks: Any, name: str = "log-stream") -> None:
        self._chunks = chunks
        self._items: queue.SimpleQueue = queue.SimpleQueue()
        self.ended = False
        self.count = 0
        threading.Thread(target=self._pump, name=name, daemon=True).start()

    def _pump(self) -> None:
        try:
            for line in decode_lines(self._chunks):
                self._items.put(line)
        except Exception as exc:  # handed to the reading thread
            self._items.put(exc)
        self._items.put(_END)

    def read(self, wait: float) -> list[str]:
        """The lines that arrived, waiting up to ``wait`` seconds for the first."""
        lines: list[str] = []
        while not self.ended:
            try:
                first = wait > 0 and not lines
                item = self._items.get(timeout=wait) if first else self._items.get_nowait()
            except queue.Empty:
                break
            if item is _END or isinstance(item, Exception):
                self.ended = True
                if isinstance(item, Exception):
                    self.count += len(lines)
                    raise item
                break
            lines.append(item)
        self.count += len(lines)
        return lines

    def close(self) -> None:
        """Close the underlying stream (its pump thread then ends)."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
