"""A storage written against the whole-object methods (put_bytes / get_bytes) gets the streams
from the base class and passes the same contract; one with neither pair is refused at once."""

import threading
from pathlib import Path

import pytest

from dagster_airflow.errors import OutputNotFoundError
from dagster_airflow.storage.base import IntermediateStorage
from dagster_airflow.testing.contracts import StorageContract


class DictStorage(IntermediateStorage):
    """Objects in a dict, whole: what a key-value store without streaming would do."""

    name = "dict"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.lock = threading.Lock()

    def uri(self, key: str) -> str:
        return f"dict://{key}"

    def put_bytes(self, key: str, data: bytes) -> None:
        with self.lock:
            self.objects[key] = bytes(data)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.objects[key]
        except KeyError:
            raise OutputNotFoundError(f"no object at {self.uri(key)!r}.") from None

    def exists(self, key: str) -> bool:
        return key in self.objects

    def list(self, prefix: str):
        start = prefix.rstrip("/") + "/"
        return iter(sorted(key for key in self.objects if key.startswith(start)))


class TestBytesOnlyStorageContract(StorageContract):
    @pytest.fixture
    def storage(self):
        return DictStorage()


def test_a_storage_with_neither_streams_nor_bytes_methods_is_refused():
    class Incomplete(IntermediateStorage):
        name = "incomplete"

        def uri(self, key):
            return key

        def exists(self, key):
            return False

        def list(self, prefix):
            return iter(())

    with pytest.raises(TypeError) as raised:
        Incomplete()
    assert str(raised.value) == (
        "Can't instantiate storage class Incomplete without open_write or put_bytes"
    )
    troubleshooting = Path(__file__).parents[2] / "docs" / "troubleshooting.md"
    assert "without open_write or put_bytes" in troubleshooting.read_text()
