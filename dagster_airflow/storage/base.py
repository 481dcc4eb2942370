"""The IntermediateStorage interface: streams of bytes by key, committed atomically.

A storage implements either pair: the streams (``open_write`` / ``open_read``), through which
the worker pickles an output straight into the storage and unpickles an input straight out of
it, so that no copy of a whole object is made; or the bytes methods (``put_bytes`` /
``get_bytes``), over which the base makes the streams, holding each object whole in memory.
Each pair has a default over the other, so a storage written against either keeps working.

A storage is used on both sides: the worker writes and reads outputs through it (Dagster side),
and the operator asks it, at execute time, which credentials its worker needs (Airflow side). So
it imports neither Dagster nor Airflow, and its SDK only inside the methods that need it.
"""

from __future__ import annotations

import functools
import io
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, ClassVar
from urllib.parse import quote

import attrs

from dagster_airflow.keys import check_key

# What the operator hands a storage to read an Airflow connection: conn_id -> a Connection
# (dagster_airflow.connection; a plain dict from an older caller: Connection.parse takes both) or
# None when there is no such connection.
ConnectionGetter = Callable[[str], Any]

EVENT_LOG_NAME = "events.jsonl"
# Beside a step's outputs: how its last attempt ended and what it yielded, in order (run_state.py).
OUTPUTS_RECORD_NAME = "outputs.json"

S3_CONSOLE = "https://s3.console.aws.amazon.com/s3"
GCS_CONSOLE = "https://console.cloud.google.com/storage/browser"


def browse_url(uri: str, folder: bool = False) -> str:
    """The console URL of an s3:// or gs:// URI, the file:// URL of a path, else the URI."""
    scheme, sep, rest = uri.partition("://")
    if sep and scheme in ("s3", "gs"):
        bucket, _, key = rest.partition("/")
        if scheme == "s3":
            page = "buckets" if folder else "object"
            return f"{S3_CONSOLE}/{page}/{bucket}?prefix={quote(key)}"
        page = f"{bucket}/{key}" if folder else f"_details/{bucket}/{key}"
        return f"{GCS_CONSOLE}/{quote(page)}"
    if not sep and uri.startswith("/"):
        return Path(uri).as_uri() + ("/" if folder else "")
    return uri


@attrs.frozen
class ObjectStat:
    """What a storage knows of a committed object: its size in bytes and when it was written
    (seconds since the epoch, UTC)."""

    size: int
    modified: float


# The methods handed a key. Every storage refuses a key that could leave it (keys.check_key):
# the base class wraps each subclass's own implementation, so no storage can forget to.
_KEYED_METHODS = (
    "uri",
    "open_write",
    "open_read",
    "put_bytes",
    "get_bytes",
    "exists",
    "browse_url",
)
# Each stream method and the bytes method it may be made from instead (and the other way round).
_PAIRS = (("open_write", "put_bytes"), ("open_read", "get_bytes"))
STAT_CHUNK = 1024 * 1024


def _refusing_unsafe_keys(method: Callable) -> Callable:
    @functools.wraps(method)
    def checked(self, key, *args, **kwargs):
        check_key(key)
        return method(self, key, *args, **kwargs)

    return checked


def _refusing_unsafe_prefixes(method: Callable) -> Callable:
    @functools.wraps(method)
    def checked(self, prefix, *args, **kwargs):
        if isinstance(prefix, str) and prefix.strip("/"):
            check_key(prefix.strip("/"))
        else:
            check_key(prefix)
        return method(self, prefix, *args, **kwargs)

    return checked


class IntermediateStorage(ABC):
    """Where outputs live, under ``{prefix}/{run_id}/{step_key}/{output_name}``.

    Subclasses set ``name`` and take their options either as keyword arguments of
    ``__init__`` or, declared once, as an attrs class (dagster_airflow.options.Configured, as
    the built-in storages do). Each implements ``open_write`` and ``open_read`` (streaming), or
    ``put_bytes`` and ``get_bytes`` (whole objects). Each method that takes a key refuses one
    with a '..' or absolute part or a control character before the subclass's code runs
    (ConfigurationError), so a key never leaves the storage.
    """

    name: ClassVar[str]
    # Set by use_credentials: what the backend's client reads instead of the environment.
    credentials: Mapping[str, str] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for method in _KEYED_METHODS:
            if method in cls.__dict__:
                setattr(cls, method, _refusing_unsafe_keys(cls.__dict__[method]))
        if "list" in cls.__dict__:
            cls.list = _refusing_unsafe_prefixes(cls.__dict__["list"])

    def __new__(cls, *args: Any, **kwargs: Any) -> IntermediateStorage:
        # Each stream method and its bytes method default to each other: one of each pair must
        # be the storage's own, or the first write would recurse.
        for stream, whole in _PAIRS:
            base = IntermediateStorage.__dict__
            if getattr(cls, stream) is base[stream] and getattr(cls, whole) is base[whole]:
                raise TypeError(
                    f"Can't instantiate storage class {cls.__name__} without {stream} or {whole}"
                )
        return super().__new__(cls)

    @classmethod
    def scaffold_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """The options to write into a scaffolded DAG file, given the ones the user passed:
        add any default a user should see and may want to edit."""
        return options

    def key(self, run_id: str, step_key: str, name: str) -> str:
        """The key of an output (or the event log) of a step, relative to the storage's root.

        Refused (ConfigurationError) when a part could lead outside the storage: '..', an
        absolute part, a control character. Every storage checks the keys it is handed too."""
        return check_key(f"{run_id}/{step_key}/{name}")

    @abstractmethod
    def uri(self, key: str) -> str:
        """Where a user finds the object: a path or a URL such as s3://bucket/prefix/key."""

    @_refusing_unsafe_keys
    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        """A writable stream; the object appears whole when the block exits without error.

        A reader never sees a partial object: on error (or a killed writer) nothing is committed,
        and a second write of the same key replaces the first whole. The worker pickles each
        output straight into it. Default: a buffer that ``put_bytes`` stores at the end (the
        whole object in memory: a storage that can, streams instead).
        """
        buffer = io.BytesIO()
        yield buffer
        self.put_bytes(key, buffer.getvalue())

    @_refusing_unsafe_keys
    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        """A readable stream; raises OutputNotFoundError naming the URI when there is none. The
        worker unpickles each input straight from it. Default: the object ``get_bytes`` reads,
        whole."""
        yield io.BytesIO(self.get_bytes(key))

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object was committed under the key."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[str]:
        """The keys under a prefix (such as a run id), sorted."""

    def stat(self, key: str) -> ObjectStat:
        """The object's size and time of writing; raises OutputNotFoundError naming the URI when
        there is none. Backends answer from metadata; this fallback reads the object through,
        a chunk at a time."""
        import time

        size = 0
        with self.open_read(key) as stream:
            while chunk := stream.read(STAT_CHUNK):
                size += len(chunk)
        return ObjectStat(size=size, modified=time.time())

    def browse_url(self, key: str, folder: bool = False) -> str:
        """Where a person looks at an object (or, with ``folder``, a key prefix) in a browser:
        the console page for s3:// and gs:// URIs, a file:// URL for a path. The extra links of
        Airflow tasks use it; a storage with its own console overrides it."""
        if folder:  # a key prefix ends in "/": the key check is of the prefix itself
            return browse_url(self.uri(key.rstrip("/")) + "/", folder)
        return browse_url(self.uri(key), folder)

    def credentials_env(self, get_connection: ConnectionGetter) -> dict[str, str]:
        """Environment variables the worker needs to reach the storage, read from Airflow
        connections at execute time. Never logged, never written to a file."""
        return {}

    def use_credentials(self, env: Mapping[str, str]) -> IntermediateStorage:
        """Reach the backend with these credentials (the variables ``credentials_env`` returns)
        rather than with this process's environment: for a reader serving many DAGs at once, such
        as the step view on Airflow's api-server, which must not put one DAG's secrets into its
        environment. Returns the storage itself; a storage that needs no credentials ignores
        them."""
        self.credentials = dict(env)
        return self

    def credential(self, name: str) -> str | None:
        """A credential variable: the one given to ``use_credentials``, else the environment's."""
        if self.credentials is not None:
            return self.credentials.get(name)
        import os

        return os.environ.get(name)

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store a whole object under the key (committed as ``open_write`` commits). Default:
        through ``open_write``."""
        with self.open_write(key) as stream:
            stream.write(data)

    def get_bytes(self, key: str) -> bytes:
        """A whole object; raises OutputNotFoundError naming the URI when there is none.
        Default: through ``open_read``."""
        with self.open_read(key) as stream:
            return stream.read()
