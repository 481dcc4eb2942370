"""Files written whole: beside the target, locked while written, renamed over it, made durable.

Used by the filesystem storage and by ``scaffold --install``. A writer holds an exclusive lock on
its hidden temporary file until it renames it, so a later writer tells a live writer's file from
a killed one's (the kernel drops the lock of a dead process) and removes only the latter.
"""

from __future__ import annotations

import configparser
import errno
import fcntl
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from dagster_airflow.errors import ConfigurationError, UntrustedFolderError

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


# -- Folders another user could swap -------------------------------------------------------------


def _who(uid: int) -> str:
    import pwd

    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _make_private(path: Path) -> None:
    """Create the missing folders of ``path`` 0700. One that appears meanwhile (another process
    was first, perhaps another user) is left for the check that follows."""
    missing = []
    while not os.path.lexists(path) and path != path.parent:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        with suppress(FileExistsError):
            os.mkdir(folder, 0o700)


def _distrust(
    folder: Path, info: os.stat_result, final: bool, private: bool
) -> tuple[str, str] | None:
    """Why ``folder`` lets someone but this user and root change what lies under it, and the
    remedy; None when it does not."""
    owner = f"owned by {_who(info.st_uid)} with mode {stat.S_IMODE(info.st_mode):04o}"
    kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "a folder"
    if info.st_uid not in (os.geteuid(), 0):
        return f"{kind} {owner}, another user, who can change what is read from it", "remove it"
    if stat.S_ISLNK(info.st_mode):
        return None  # a link's own mode means nothing, and its owner is trusted
    if final and private and info.st_mode & 0o077:
        return f"{kind} {owner}, which other users can enter", f"run chmod 700 {str(folder)!r}"
    # A sticky folder (/tmp) lets others add entries but not rename or remove ours.
    if info.st_mode & 0o022 and (final or not info.st_mode & stat.S_ISVTX):
        who = "its group" if info.st_mode & 0o022 == 0o020 else "every user"
        return (
            f"{kind} {owner}, which {who} can write, so they can change what is read from it",
            f"run chmod go-w {str(folder)!r}",
        )
    return None


def trusted_folder(
    path: Path, what: str, fix: str, *, private: bool = False, create: bool = True
) -> Path:
    """``path``, once proven that only this user and root can change what lies under it.

    Missing folders are created 0700 (``create``; else the existing part is checked), and only
    under folders that passed. Refused, with one sentence naming the folder, its owner and its
    mode: a folder on the way that belongs to another user, one that others can write (a
    sticky parent such as /tmp is fine), a symbolic link of another user; with ``private``, a
    folder others can enter. ``what`` names the folder ("the filesystem storage's base_dir")
    and ``fix`` ends the sentence ("set base_dir to a folder of your own"). OSError when a
    folder cannot be made.
    """
    path = Path(os.path.abspath(os.path.expanduser(path)))
    _check(path, what, fix, private, must_exist=False)
    if create:
        _make_private(path)
        _check(path, what, fix, private, must_exist=True)  # another process may have been first
    return path


def _check(path: Path, what: str, fix: str, private: bool, must_exist: bool) -> None:
    real = Path(os.path.realpath(path))
    # Each link on the way as written (a link in /tmp can be anyone's), then each folder it
    # leads to, from the root down; a pass ends at the first that is not there yet (it will
    # be created 0700 under what was checked).
    for chain, look in (
        ((*reversed(path.parents), path), os.lstat),
        ((*reversed(real.parents), real), os.stat),
    ):
        for folder in chain:
            try:
                info = look(folder)
            except FileNotFoundError:
                if must_exist:
                    raise
                break
            if look is os.lstat and not stat.S_ISLNK(info.st_mode):
                continue
            if look is os.stat and not stat.S_ISDIR(info.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))
            distrust = _distrust(folder, info, folder == real and look is os.stat, private)
            if distrust:
                problem, remedy = distrust
                where = "it is" if folder == path else f"{str(folder)!r} is"
                raise UntrustedFolderError(
                    f"{what} {str(path)!r} is not safe to use: {where} {problem}; {remedy}, "
                    f"or {fix}."
                )


def airflow_folder(option: str) -> Path:
    """A folder from Airflow's [core] configuration (dags_folder, plugins_folder), read as Airflow
    reads it, without importing Airflow: its environment variable, airflow.cfg, the default."""
    env = f"AIRFLOW__CORE__{option.upper()}"
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    home = Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()
    config = configparser.ConfigParser(interpolation=None)
    config.read(home / "airflow.cfg")
    folder = config.get("core", option, fallback="")
    if folder:
        return Path(folder.replace("{AIRFLOW_HOME}", str(home))).expanduser()
    return home / option.removesuffix("_folder")


def dags_folder() -> Path:
    """Airflow's configured dags folder."""
    return airflow_folder("dags_folder")


def write_atomically(text: str, folder: Path, filename: str) -> Path:
    """Write a Python file into a folder Airflow watches: whole, or not at all, readable as the
    umask allows (the DAG processor may run as another user)."""
    if not re.fullmatch(r"[\w.-]+\.py", filename):
        raise ConfigurationError(
            f"cannot name a file {filename!r} in {str(folder)!r}; use letters, digits, '_', "
            "'.' and '-'."
        )
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / filename
    with write_whole(target) as stream:
        stream.write(text.encode())
    return target


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"
