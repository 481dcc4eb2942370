"""Filesystem storage: layout and atomic commits."""

import pytest

from dagster_airflow.errors import OutputNotFoundError
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


class TestFilesystemStorageContract(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path):
        return FilesystemStorage(base_dir=str(tmp_path))
