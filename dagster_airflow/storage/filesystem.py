"""Filesystem storage: a directory on a disk every step can see (local runs, shared mounts)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import attrs

from dagster_airflow.errors import ConfigurationError, OutputNotFoundError, StorageError
from dagster_airflow.files import trusted_folder, write_whole
from dagster_airflow.keys import check_key
from dagster_airflow.options import Configured, OptionFields
from dagster_airflow.plugins import hookimpl
from dagster_airflow.storage.base import IntermediateStorage, ObjectStat

_field = OptionFields("the filesystem storage")
_FIX = "set the storage's 'base_dir' option to a folder of your own"


def default_base_dir() -> Path:
    """This user's default: ``$TMPDIR/dagster-airflow-UID``, never a folder shared by users.

    Resolved in each process, not written into the DAG file: the Airflow worker, the steps it
    starts and `results` (run as the same user) all find the same folder."""
    return Path(tempfile.gettempdir()) / f"dagster-airflow-{os.geteuid()}"


@attrs.frozen
class FilesystemOptions:
    base_dir: str | None = _field.string(
        "base_dir", default=None, example="/data/dagster-airflow", expected="a path"
    )


def _unusable(base_dir: Path) -> str | None:
    """Why steps on this machine could not write under base_dir, or None."""
    if base_dir.exists():
        if not base_dir.is_dir():
            return "is a file, not a folder"
        return None if os.access(base_dir, os.W_OK | os.X_OK) else "is not writable"
    parent = base_dir.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot be created: {str(parent)!r} is a file"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot be created: {str(parent)!r} is not writable"
    return None


class FilesystemStorage(Configured, IntermediateStorage):
    """Outputs in a folder of this user's (FilesystemOptions: ``base_dir``, default
    ``$TMPDIR/dagster-airflow-UID``)."""

    name = "filesystem"
    options_class = FilesystemOptions

    def configure(self) -> None:
        self.base_dir = Path(self.options.base_dir or default_base_dir()).expanduser().absolute()
        self._trusted = False

    @classmethod
    def scaffold_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        # No base_dir given: none written, so each process takes its user's own default.
        base_dir = FilesystemOptions(options.get("base_dir")).base_dir
        if base_dir is None:
            return options
        # Absolute, so the DAG works whatever directory Airflow's workers run in; and usable
        # here, where the scaffold runs (for the subprocess runner, where the steps run too).
        path = Path(base_dir).expanduser().absolute()
        problem = _unusable(path)
        if problem:
            raise ConfigurationError(
                f"the filesystem storage's option 'base_dir' {str(path)!r} {problem}; set "
                "base_dir to a folder every step can write, such as /data/dagster-airflow."
            )
        trusted_folder(path, "the filesystem storage's base_dir", _FIX, create=False)
        return {**options, "base_dir": str(path)}

    def _checked(self, key: str) -> Path:
        """The file of a key, once base_dir is proven to be this user's (created 0700 if
        missing): every read and write comes through here, so no step, and no `results`,
        loads a pickle from a folder another user can change."""
        if not self._trusted:
            trusted_folder(self.base_dir, "the filesystem storage's base_dir", _FIX)
            self._trusted = True
        return self.path(key)

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
            ) from None  # the sentence carries the errno's text

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        # Written beside the target and renamed over it: a reader sees the old object or the new
        # one, never half of one. A killed writer's hidden file goes at the next write there.
        # (An OSError of the stream itself, such as ENOSPC, is the storage's too.)
        with self.errors(key):
            path = self._checked(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            with write_whole(path) as stream:
                yield stream

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        with self.errors(key):
            path = self._checked(key)
            try:
                stream = open(path, "rb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                raise OutputNotFoundError(f"no object at {str(path)!r}.") from None
        with stream:
            yield stream

    def exists(self, key: str) -> bool:
        with self.errors(key):
            return self._checked(key).is_file()

    def stat(self, key: str) -> ObjectStat:
        with self.errors(key):
            path = self._checked(key)
        try:
            info = path.stat()
        except FileNotFoundError:
            raise OutputNotFoundError(f"no object at {self.uri(key)!r}.") from None
        return ObjectStat(size=info.st_size, modified=info.st_mtime)

    def list(self, prefix: str) -> Iterator[str]:
        with self.errors(prefix):
            root = self._checked(prefix)
            if not root.is_dir():
                return iter(())
            keys = sorted(
                str(p.relative_to(self.base_dir))
                for p in root.rglob("*")
                if p.is_file() and not p.name.startswith(".")
            )
        return iter(keys)


@hookimpl
def dagster_airflow_register_storages(register):
    register(FilesystemStorage)
