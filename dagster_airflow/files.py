"""Files written whole: beside the target, locked while written, renamed over it, made durable.

Used by the filesystem storage and by ``scaffold --install``. A writer holds an exclusive lock on
its hidden temporary file until it renames it, so a later writer tells a live writer's file from
a killed one's (the kernel drops the lock of a dead process) and removes only the latter.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"


def umask() -> int:
    """The process's umask, read without changing it (Linux reports it in /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore, as the CLI is single-threaded here
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode ``open()`` would give a new file: 0666 less the umask (mkstemp gives 0600, which
    a DAG processor or a step running as another user could not read)."""
    return 0o666 & ~umask()


def fsync_directory(folder: Path) -> None:
    """Make a rename in ``folder`` durable: a crash after it cannot bring the old entry back."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_abandoned(folder: Path, prefix: str = ".") -> list[Path]:
    """Remove the hidden temporary files in ``folder`` whose writer is gone (its lock is free);
    a live writer's file is left alone. Returns the files removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(TEMP_SUFFIX)):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except (BlockingIOError, FileNotFoundError):
            pass  # its writer is alive, or another sweeper was first
        finally:
            os.close(fd)
    return removed


@contextmanager
def write_whole(target: Path, mode: int | None = None) -> Iterator[BinaryIO]:
    """A binary stream whose bytes replace ``target`` whole when the block exits cleanly.

    The stream is a hidden, locked ``.{name}.XXXX.tmp`` beside the target, given ``mode``
    (default: what the umask allows); a failed block removes it, and a killed writer's is
    removed by the next write into the same folder.
    """
    import tempfile

    folder = target.parent
    remove_abandoned(folder)
    while True:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=TEMP_SUFFIX)
        fcntl.flock(fd, fcntl.LOCK_EX)
        # A sweeper that opened the file before we locked it may have removed it: start again.
        if os.fstat(fd).st_nlink:
            break
        os.close(fd)
    try:
        os.fchmod(fd, file_mode() if mode is None else mode)
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
            # Renamed while still locked, so no sweeper can take a finished file for abandoned.
            os.replace(tmp, target)
        fsync_directory(folder)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
