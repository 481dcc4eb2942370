"""Filesystem storage: a directory on a disk every step can see (local runs, shared mounts)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from dagster_airflow.errors import ConfigurationError, OutputNotFoundError, StorageError
from dagster_airflow.files import write_whole
from dagster_airflow.keys import check_key
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
        """The file of a key, proven to lie under ``base_dir`` once symlinks are resolved."""
        path = self.base_dir / check_key(key)
        resolved, root = path.resolve(), self.base_dir.resolve()
        if not resolved.is_relative_to(root):
            raise ConfigurationError(
                f"the storage key {key!r} resolves to {str(resolved)!r}, outside the "
                f"filesystem storage's base_dir {str(root)!r} (a symlink?); remove the link."
            )
        return path

    def uri(self, key: str) -> str:
        return str(self.path(key))

    @contextmanager
    def errors(self, key: str) -> Iterator[None]:
        """Turn an OSError (no permission, no space, a file where a folder should be) into one
        sentence naming base_dir."""
        try:
            yield
        except OSError as exc:
            where = exc.filename or self.uri(key)
            raise StorageError(
                f"the filesystem storage cannot use {str(where)!r} ({exc.strerror or exc}) under "
                f"base_dir {str(self.base_dir)!r}; make base_dir a folder every step can write, "
                "or set the storage's 'base_dir' option to one."
            ) from exc

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        path = self.path(key)
        # Written beside the target and renamed over it: a reader sees the old object or the new
        # one, never half of one. A killed writer's hidden file goes at the next write there.
        # (An OSError of the stream itself, such as ENOSPC, is the storage's too.)
        with self.errors(key):
            path.parent.mkdir(parents=True, exist_ok=True)
            with write_whole(path) as stream:
                yield stream

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        path = self.path(key)
        with self.errors(key):
            try:
                stream = open(path, "rb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                raise OutputNotFoundError(f"no object at {str(path)!r}.") from None
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
