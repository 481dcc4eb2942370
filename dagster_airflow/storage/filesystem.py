"""Filesystem storage: a directory on a disk every step can see (local runs, shared mounts)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from dagster_airflow.errors import OutputNotFoundError
from dagster_airflow.plugins import hookimpl
from dagster_airflow.storage.base import IntermediateStorage, ObjectStat

DEFAULT_BASE_DIR = os.path.join(tempfile.gettempdir(), "dagster-airflow")


class FilesystemStorage(IntermediateStorage):
    name = "filesystem"

    def __init__(self, base_dir: str = DEFAULT_BASE_DIR) -> None:
        self.base_dir = Path(base_dir).expanduser().absolute()

    @classmethod
    def scaffold_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        # Absolute, so the DAG works whatever directory Airflow's workers run in.
        base_dir = options.get("base_dir", DEFAULT_BASE_DIR)
        return {**options, "base_dir": str(Path(base_dir).expanduser().absolute())}

    def path(self, key: str) -> Path:
        return self.base_dir / key

    def uri(self, key: str) -> str:
        return str(self.path(key))

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the target and renamed over it: a reader sees the old object or the new
        # one, never half of one, and a killed writer leaves only a hidden temporary file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as stream:
                yield stream
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        try:
            stream = open(self.path(key), "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise OutputNotFoundError(f"no object at {self.uri(key)!r}.") from None
        with stream:
            yield stream

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def stat(self, key: str) -> ObjectStat:
        try:
            info = self.path(key).stat()
        except FileNotFoundError:
            raise OutputNotFoundError(f"no object at {self.uri(key)!r}.") from None
        return ObjectStat(size=info.st_size, modified=info.st_mtime)

    def list(self, prefix: str) -> Iterator[str]:
        root = self.path(prefix)
        if not root.is_dir():
            return iter(())
        keys = (
            str(p.relative_to(self.base_dir))
            for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )
        return iter(sorted(keys))


@hookimpl
def dagster_airflow_register_storages(register):
    register(FilesystemStorage)
