"""Filesystem storage: layout and atomic commits."""

import os
import pwd
import signal
import stat
import subprocess
import sys
import tempfile

import pytest

from dagster_airflow.errors import OutputNotFoundError, StorageError, UntrustedFolderError
from dagster_airflow.storage.filesystem import FilesystemStorage
from dagster_airflow.testing.contracts import StorageContract


def test_layout_and_round_trip(tmp_path):
    storage = FilesystemStorage(base_dir=str(tmp_path))
    key = storage.key("run", "step", "result")
    storage.put_bytes(key, b"data")
    assert (tmp_path / "run" / "step" / "result").read_bytes() == b"data"
    assert storage.get_bytes(key) == b"data"
    assert storage.uri(key) == str(tmp_path / "run" / "step" / "result")
    assert list(storage.list("run")) == ["run/step/result"]


def test_a_writer_that_fails_midway_leaves_the_old_object_whole(tmp_path):
    storage = FilesystemStorage(base_dir=str(tmp_path))
    key = storage.key("run", "step", "result")
    storage.put_bytes(key, b"first")
    with pytest.raises(RuntimeError), storage.open_write(key) as stream:
        stream.write(b"half of the sec")
        raise RuntimeError("killed")
    assert storage.get_bytes(key) == b"first"
    assert list(storage.list("run")) == ["run/step/result"]


def test_missing_object_names_its_path(tmp_path):
    storage = FilesystemStorage(base_dir=str(tmp_path))
    with pytest.raises(OutputNotFoundError, match=r"no object at '.*/run/step/nothing'"):
        storage.get_bytes(storage.key("run", "step", "nothing"))


MIB = 1024 * 1024


class TestFilesystemStorageContract(StorageContract):
    holds_at_most = 8 * MIB  # a file's buffer: the rest goes straight to or from the disk

    @pytest.fixture
    def storage(self, tmp_path):
        return FilesystemStorage(base_dir=str(tmp_path))


RUN_ID = "3f2b1c4d-5e6f-5a7b-8c9d-0e1f2a3b4c5d"
# A writer that writes half an object, says so, and waits to be killed.
KILLED_WRITER = """
import sys, time
from dagster_airflow.storage.filesystem import FilesystemStorage
storage = FilesystemStorage(base_dir=sys.argv[1])
with storage.open_write(storage.key(sys.argv[2], "step", "result")) as stream:
    stream.write(b"x" * 1024 * 1024)
    stream.flush()
    print("written", flush=True)
    time.sleep(600)
"""


def hidden_files(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_killed_writers_temporary_file_goes_at_the_next_write(tmp_path):
    storage = FilesystemStorage(base_dir=str(tmp_path))
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path), RUN_ID],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout.readline() == "written\n"
    folder = tmp_path / RUN_ID / "step"
    # While the writer lives, a write of another key in its folder leaves its file alone.
    storage.put_bytes(storage.key(RUN_ID, "step", "other"), b"o")
    assert len(hidden_files(folder)) == 1
    writer.send_signal(signal.SIGKILL)
    writer.wait()

    storage.put_bytes(storage.key(RUN_ID, "step", "result"), b"retry")
    assert hidden_files(folder) == []
    assert storage.get_bytes(storage.key(RUN_ID, "step", "result")) == b"retry"


def test_a_live_writers_temporary_file_is_left_alone(tmp_path):
    storage = FilesystemStorage(base_dir=str(tmp_path))
    key = storage.key(RUN_ID, "step", "result")
    with storage.open_write(key) as first:
        first.write(b"first")
        storage.put_bytes(key, b"second")  # another writer of the same key, at the same time
        first.write(b" and more")
    assert storage.get_bytes(key) == b"first and more"
    assert hidden_files(tmp_path / RUN_ID / "step") == []


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_stored_outputs_honour_the_umask(tmp_path, umask):
    storage = FilesystemStorage(base_dir=str(tmp_path))
    key = storage.key(RUN_ID, "step", "result")
    old = os.umask(umask)
    try:
        storage.put_bytes(key, b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(storage.path(key).stat().st_mode) == 0o666 & ~umask


def test_an_unusable_base_dir_is_one_sentence_naming_it(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    storage = FilesystemStorage(base_dir=str(tmp_path / "file"))
    with pytest.raises(StorageError) as caught:
        storage.put_bytes(storage.key(RUN_ID, "step", "result"), b"x")
    message = str(caught.value)
    assert f"under base_dir {str(tmp_path / 'file')!r}" in message
    assert "(Not a directory)" in message
    assert "\n" not in message


# -- No shared folder is trusted (issue 23) -------------------------------------------------------

NOBODY = 65534
ME = f"{pwd.getpwuid(os.geteuid()).pw_name} (uid {os.geteuid()})"
FIX = "set the storage's 'base_dir' option to a folder of your own."


def refusal(base_dir, problem, remedy) -> str:
    return (
        f"the filesystem storage's base_dir {str(base_dir)!r} is not safe to use: {problem}; "
        f"{remedy}, or {FIX}"
    )


def test_the_default_base_dir_is_this_users_own_created_0700(tmp_path, monkeypatch):
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)  # as /tmp: every user may add entries, none may swap another's
    monkeypatch.setattr(tempfile, "tempdir", str(sticky))
    storage = FilesystemStorage()
    storage.put_bytes(storage.key(RUN_ID, "step", "result"), b"x")
    assert storage.base_dir == sticky / f"dagster-airflow-{os.geteuid()}"
    assert stat.S_IMODE(storage.base_dir.stat().st_mode) == 0o700
    assert storage.get_bytes(storage.key(RUN_ID, "step", "result")) == b"x"


def test_a_base_dir_of_another_user_is_refused_before_anything_is_read(tmp_path):
    theirs = tmp_path / "theirs"
    (theirs / RUN_ID / "step").mkdir(parents=True)
    (theirs / RUN_ID / "step" / "result").write_bytes(b"planted")
    for path in (theirs, theirs / RUN_ID, theirs / RUN_ID / "step"):
        os.chown(path, NOBODY, NOBODY)
    storage = FilesystemStorage(base_dir=str(theirs))
    expected = refusal(
        theirs,
        "it is a folder owned by nobody (uid 65534) with mode 0755, another user, who can "
        "change what is read from it",
        "remove it",
    )
    key = storage.key(RUN_ID, "step", "result")
    for use in (
        lambda: storage.get_bytes(key),
        lambda: list(storage.list(RUN_ID)),
        lambda: storage.exists(key),
        lambda: storage.stat(key),
        lambda: storage.put_bytes(key, b"mine"),
    ):
        with pytest.raises(UntrustedFolderError) as caught:
            use()
        assert str(caught.value) == expected
    assert (theirs / RUN_ID / "step" / "result").read_bytes() == b"planted"


@pytest.mark.parametrize(
    ("mode", "who"), [(0o777, "every user"), (0o775, "its group"), (0o1777, "every user")]
)
def test_a_base_dir_others_can_write_is_refused(tmp_path, mode, who):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    storage = FilesystemStorage(base_dir=str(shared))
    with pytest.raises(UntrustedFolderError) as caught:
        storage.put_bytes(storage.key(RUN_ID, "step", "result"), b"x")
    assert str(caught.value) == refusal(
        shared,
        f"it is a folder owned by {ME} with mode {mode:04o}, which {who} can write, so they can "
        "change what is read from it",
        f"run chmod go-w {str(shared)!r}",
    )
    assert list(shared.iterdir()) == []


def test_a_folder_on_the_way_that_others_can_write_is_refused(tmp_path):
    """Who can write a parent can rename base_dir away and put their own in its place; a
    sticky parent (as /tmp) cannot, and is fine."""
    parent = tmp_path / "parent"
    parent.mkdir()
    parent.chmod(0o777)
    storage = FilesystemStorage(base_dir=str(parent / "outputs"))
    with pytest.raises(UntrustedFolderError) as caught:
        storage.put_bytes(storage.key(RUN_ID, "step", "result"), b"x")
    assert str(caught.value) == refusal(
        parent / "outputs",
        f"{str(parent)!r} is a folder owned by {ME} with mode 0777, which every user can write, "
        "so they can change what is read from it",
        f"run chmod go-w {str(parent)!r}",
    )
    assert not (parent / "outputs").exists()
    parent.chmod(0o1777)
    storage.put_bytes(storage.key(RUN_ID, "step", "result"), b"x")
    assert stat.S_IMODE((parent / "outputs").stat().st_mode) == 0o700


def test_another_users_link_in_a_sticky_folder_is_refused(tmp_path):
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    mine = tmp_path / "mine"
    mine.mkdir()
    link = sticky / "dagster-airflow"
    link.symlink_to(mine)
    os.chown(link, NOBODY, NOBODY, follow_symlinks=False)
    storage = FilesystemStorage(base_dir=str(link))
    with pytest.raises(UntrustedFolderError) as caught:
        storage.put_bytes(storage.key(RUN_ID, "step", "result"), b"x")
    assert str(caught.value) == refusal(
        link,
        "it is a symbolic link owned by nobody (uid 65534) with mode 0777, another user, who "
        "can change what is read from it",
        "remove it",
    )
    assert list(mine.iterdir()) == []
