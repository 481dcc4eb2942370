"""Secrets a step was handed, hidden from everything the worker writes (the wire: stdlib only).

The Airflow side registers each secret with Airflow's masker, in every form below, and tells the
worker only the NAMES of the environment variables that hold secrets, as a JSON list in
``DAGSTER_AIRFLOW_SECRET_NAMES``: no secret value travels anywhere it did not already go. The
worker reads the values from its own environment and passes everything it writes or forwards
through one ``Redactor``: its events (so the event log, the step view and ``results`` see them
redacted), output previews, error text, and the step's own standard output and error.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from dagster_airflow.errors import ConfigurationError

SECRET_NAMES_ENV_VAR = "DAGSTER_AIRFLOW_SECRET_NAMES"
# A variable whose name says it holds a credential (not a region or an endpoint URL).
_CREDENTIAL_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|KEY|CREDENTIAL", re.IGNORECASE)
REPLACEMENT = "***"
# A line longer than this is let through in pieces (keeping the tail a secret could start in).
_MAX_HELD = 64 * 1024
# How long the end of a step waits for the last of its output (a process it started may hold
# the output open: what it writes later is lost, and the step says so).
OUTPUT_DRAIN_SECONDS = 5.0


def is_credential_name(name: str) -> bool:
    """Whether an environment variable of this name holds a credential."""
    return bool(_CREDENTIAL_NAME.search(name))


def forms(secret: str) -> set[str]:
    """The secret as a log line may hold it: as is, JSON-escaped (ASCII or not), in a Python
    repr or ascii() between either quote, in a bytes repr, and URL-quoted."""
    found = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    for show in (repr, ascii):
        found.add(show(secret + "'\"")[1:-4])  # between single quotes (the quote escaped)
        if '"' not in secret:
            found.add(show(secret + "'")[1:-2])  # between double quotes
    found.add(repr(secret.encode("utf-8", "surrogatepass"))[2:-1])
    found.update((quote(secret, safe=""), quote_plus(secret, safe="")))
    return {form for form in found if form}


class Redactor:
    """Replaces every occurrence of any form of the secrets with ``***``.

    Occurrences that overlap (a secret that is part of another, or two that share characters)
    are merged, so no piece of either is left beside the mark.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        patterns = sorted({f for s in secrets if s for f in forms(s)}, key=len, reverse=True)
        # At each position, the longest form that starts there (a lookahead finds overlaps).
        alternatives = "|".join(re.escape(p) for p in patterns)
        self._finder = re.compile(f"(?=({alternatives}))", re.DOTALL) if patterns else None
        self.longest = len(patterns[0]) if patterns else 0
        self.newlines = max((p.count("\n") for p in patterns), default=0)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Redactor:
        """The secrets ``SECRET_NAMES_ENV_VAR`` names, read from ``environ``. Raises
        ConfigurationError when the variable is not a JSON list of names."""
        text = environ.get(SECRET_NAMES_ENV_VAR)
        if not text:
            return cls()
        try:
            names = json.loads(text)
        except ValueError:
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigurationError(
                f"{SECRET_NAMES_ENV_VAR} must be a JSON list of the names of environment "
                f"variables that hold secrets, such as '[\"DB_PASSWORD\"]', got {text[:80]!r}; "
                "the runner sets it: unset it where you set it by hand."
            )
        return cls(environ[name] for name in names if environ.get(name))

    def __bool__(self) -> bool:
        return self._finder is not None

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where the secrets are in ``text``: sorted, merged (start, end) pairs."""
        merged: list[tuple[int, int]] = []
        if self._finder is None:
            return merged
        for found in self._finder.finditer(text):
            start, end = found.start(), found.start() + len(found.group(1))
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        return merged

    def text(self, text: str) -> str:
        """``text`` with every secret replaced."""
        spans = self.spans(text) if text else []
        if not spans:
            return text
        pieces, at = [], 0
        for start, end in spans:
            pieces += [text[at:start], REPLACEMENT]
            at = end
        pieces.append(text[at:])
        return "".join(pieces)

    def value(self, value: Any) -> Any:
        """A JSON-like value with every string in it (keys included) redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def event(self, event: Any) -> Any:
        """A StepEvent with every string field (messages, errors, metadata) redacted."""
        if self._finder is None:
            return event
        data = json.loads(event.to_json())
        # The field names are ours; their values are what the step said.
        redacted = {key: self.value(value) for key, value in data.items()}
        return type(event).from_line(json.dumps(redacted))

    def releasable(self, text: str, final: bool = False) -> int:
        """How much of ``text`` (output that more may follow) can be redacted and let through
        now: whole lines, less the last ``newlines`` lines, so that a secret is never cut in two
        (a line longer than _MAX_HELD goes in pieces); everything when ``final``."""
        if final:
            return len(text)
        cut = len(text)
        for _ in range(self.newlines + 1):
            cut = text.rfind("\n", 0, cut)
            if cut < 0:
                break
        cut = cut + 1 if cut >= 0 else 0
        if cut == 0 and len(text) > _MAX_HELD:
            cut = len(text) - max(self.longest - 1, 0)
        for start, end in self.spans(text):
            if start < cut < end:
                return start
        return cut


def _relay(read_fd: int, write_fd: int, redactor: Redactor) -> None:
    """Copy the pipe to the real output, redacted, line by line as it comes."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    pending = ""
    while True:
        chunk = os.read(read_fd, 65536)
        pending += decoder.decode(chunk, final=not chunk)
        cut = redactor.releasable(pending, final=not chunk)
        if cut:
            _write_all(write_fd, redactor.text(pending[:cut]).encode("utf-8", "surrogateescape"))
            pending = pending[cut:]
        if not chunk:
            return


def _write_all(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the reader is gone: nothing left to protect
        while data:
            data = data[os.write(fd, data) :]


@contextlib.contextmanager
def redacted_output(redactor: Redactor) -> Iterator[None]:
    """Standard output and error of this process, and of every process it starts, redacted.

    At the file descriptors, not sys.stdout: an op's print, a library's C code and a
    subprocess's output all pass through a pipe that a thread redacts before the real output.
    Without secrets it changes nothing.
    """
    if not redactor:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    real_out, real_err = os.dup(1), os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    relay = threading.Thread(
        target=_relay, args=(read_fd, real_out, redactor), name="redacted-output", daemon=True
    )
    relay.start()
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(real_err, 2)
        os.dup2(real_out, 1)  # the pipe's last writer here closes: the relay reads its end
        os.close(real_err)
        relay.join(OUTPUT_DRAIN_SECONDS)
        if relay.is_alive():  # it keeps its descriptors: they end with the process
            _write_all(
                1,
                b"the rest of the step's output is not shown: a process the step started still "
                b"holds its output open after the step ended.\n",
            )
        else:
            os.close(read_fd)
            os.close(real_out)
