"""The storage contract: what every IntermediateStorage does, the built-in ones included.

    from dagster_airflow.testing.contracts import StorageContract

    class TestMyStorage(StorageContract):
        @pytest.fixture
        def storage(self):
            return MyStorage(bucket="test")

Kept here, beside the runner contract in ``contracts`` (which re-exports it, the import path
plugin authors use): the whole object round trips, the layout, atomic commits, listing, stat,
keys that could leave the storage, and the streams the worker pickles through.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import os
import pickle
import time
import uuid

import pytest

from dagster_airflow.errors import ConfigurationError, OutputNotFoundError

MIB = 1024 * 1024


class StorageContract:
    """What an IntermediateStorage must do. Provide a ``storage`` fixture (a fresh prefix).

    A storage that streams (its own ``open_write`` and ``open_read``, as the built-in ones)
    sets ``holds_at_most`` to the bytes of an object it holds in memory at once, whatever the
    object's size; the contract then checks it on an object larger than that. None (the
    default, for a storage made of ``put_bytes`` / ``get_bytes``, which holds objects whole):
    not checked.
    """

    holds_at_most: int | None = None

    @pytest.fixture
    def run_id(self) -> str:
        return str(uuid.uuid4())

    @pytest.mark.parametrize(
        "value",
        [
            "text",
            b"\x00bytes\xff",
            12345678901234567890,
            3.25,
            None,
            {"nested": [1, (2, 3), {"set": {4, 5}}]},
            datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC),
            decimal.Decimal("1.10"),
        ],
        ids=["str", "bytes", "int", "float", "none", "nested", "datetime", "decimal"],
    )
    def test_round_trip_of_python_values(self, storage, run_id, value):
        key = storage.key(run_id, "step", "result")
        with storage.open_write(key) as stream:
            pickle.dump(value, stream)
        with storage.open_read(key) as stream:
            assert pickle.load(stream) == value

    def test_layout_is_run_then_step_then_output(self, storage, run_id):
        key = storage.key(run_id, "count_letters", "result")
        assert key == f"{run_id}/count_letters/result"
        storage.put_bytes(key, b"x")
        assert storage.uri(key).endswith(f"{run_id}/count_letters/result")

    def test_missing_key_raises_output_not_found_naming_the_uri(self, storage, run_id):
        key = storage.key(run_id, "step", "missing")
        assert not storage.exists(key)
        with pytest.raises(OutputNotFoundError) as caught:
            storage.get_bytes(key)
        assert storage.uri(key) in str(caught.value)

    def test_overwrite_replaces_the_whole_object(self, storage, run_id):
        key = storage.key(run_id, "step", "result")
        storage.put_bytes(key, b"a much longer first attempt")
        storage.put_bytes(key, b"retry")
        assert storage.get_bytes(key) == b"retry"

    def test_a_failed_write_commits_nothing(self, storage, run_id):
        key = storage.key(run_id, "step", "result")
        with pytest.raises(RuntimeError), storage.open_write(key) as stream:
            stream.write(b"half of an obj")
            raise RuntimeError("the writer died")
        assert not storage.exists(key)
        assert list(storage.list(run_id)) == []

    def test_a_failed_rewrite_keeps_the_previous_object(self, storage, run_id):
        key = storage.key(run_id, "step", "result")
        storage.put_bytes(key, b"first")
        with pytest.raises(RuntimeError), storage.open_write(key) as stream:
            stream.write(b"second, half")
            raise RuntimeError("the writer died")
        assert storage.get_bytes(key) == b"first"

    def test_listing_a_runs_outputs(self, storage, run_id):
        for step, name in [("b", "result"), ("a", "result"), ("a", "events.jsonl")]:
            storage.put_bytes(storage.key(run_id, step, name), b"x")
        storage.put_bytes(storage.key(str(uuid.uuid4()), "a", "result"), b"other run")
        assert list(storage.list(run_id)) == [
            f"{run_id}/a/events.jsonl",
            f"{run_id}/a/result",
            f"{run_id}/b/result",
        ]
        assert list(storage.list(f"{run_id}/a")) == [
            f"{run_id}/a/events.jsonl",
            f"{run_id}/a/result",
        ]

    def test_stat_gives_the_size_and_when_it_was_written(self, storage, run_id):
        key = storage.key(run_id, "step", "result")
        before = time.time()
        storage.put_bytes(key, b"x" * 1234)
        after = time.time()
        stat = storage.stat(key)
        assert stat.size == 1234
        # Servers stamp objects to the second (S3's Last-Modified), and their clock is the
        # machine's here: within a couple of seconds of the write.
        assert before - 2 <= stat.modified <= after + 2
        storage.put_bytes(key, b"")
        assert storage.stat(key).size == 0

    def test_stat_of_a_missing_key_raises_output_not_found_naming_the_uri(self, storage, run_id):
        key = storage.key(run_id, "step", "missing")
        with pytest.raises(OutputNotFoundError) as caught:
            storage.stat(key)
        assert storage.uri(key) in str(caught.value)

    @pytest.mark.parametrize(
        "key",
        [
            "../escaped_run/step/result",
            "run/../../escaped/result",
            "/absolute/step/result",
            "run//result",
            "run/./result",
            "run/step/result\n",
            "run\x00/step/result",
            "run\\..\\result",
            "",
        ],
    )
    def test_a_key_that_could_leave_the_storage_is_refused(self, storage, key):
        uses = [storage.uri, storage.exists, storage.get_bytes, lambda k: storage.put_bytes(k, b"")]
        for use in uses:
            with pytest.raises(ConfigurationError, match="storage key"):
                use(key)

    @pytest.mark.parametrize("run_id", ["../escaped_run", "..", "a\nb"])
    def test_a_run_id_that_could_leave_the_storage_is_refused(self, storage, run_id):
        with pytest.raises(ConfigurationError, match="storage key"):
            storage.key(run_id, "step", "result")
        with pytest.raises(ConfigurationError, match="storage key"):
            storage.list(run_id)

    def test_empty_object(self, storage, run_id):
        key = storage.key(run_id, "step", "empty")
        storage.put_bytes(key, b"")
        assert storage.exists(key)
        assert storage.get_bytes(key) == b""

    # -- the streams: what the worker pickles outputs into and unpickles inputs from ------------

    def test_the_streams_and_the_bytes_methods_see_the_same_objects(self, storage, run_id):
        data = os.urandom(3 * MIB + 17)
        by_bytes, by_stream = storage.key(run_id, "a", "result"), storage.key(run_id, "b", "result")
        storage.put_bytes(by_bytes, data)
        with storage.open_read(by_bytes) as stream:
            assert _read_in_pieces(stream, 65_537) == data
        with storage.open_write(by_stream) as stream:
            for start in range(0, len(data), 100_003):
                stream.write(data[start : start + 100_003])
        assert storage.get_bytes(by_stream) == data
        assert storage.stat(by_stream).size == len(data)

    def test_a_large_value_is_pickled_into_a_stream_and_unpickled_from_one(self, storage, run_id):
        # Larger than a part or chunk of any built-in storage (S3 and GCS: 8 MiB): the pickle's
        # one large write and the unpickler's one large read go through in pieces.
        value = {"payload": os.urandom(17 * MIB + 5), "small": [1, "two"]}
        key = storage.key(run_id, "step", "result")
        with storage.open_write(key) as stream:
            pickle.dump(value, stream, protocol=pickle.HIGHEST_PROTOCOL)
        with storage.open_read(key) as stream:
            assert pickle.load(stream) == value

    def test_a_key_that_could_leave_the_storage_is_refused_by_the_streams(self, storage):
        for open_stream in (storage.open_write, storage.open_read):
            with (
                pytest.raises(ConfigurationError, match="storage key"),
                open_stream("../escaped_run/step/result"),
            ):
                pass

    def test_a_stream_holds_a_bounded_part_of_an_object(self, storage, run_id):
        if self.holds_at_most is None:
            pytest.skip("holds_at_most is not set: the storage may hold objects whole")
        import tracemalloc

        size = 2 * self.holds_at_most + 16 * MIB
        value = os.urandom(MIB) * (size // MIB)
        key = storage.key(run_id, "step", "result")
        storage.exists(key)  # the client is made before measuring
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            with storage.open_write(key) as stream:
                pickle.dump(value, stream, protocol=pickle.HIGHEST_PROTOCOL)
            written = tracemalloc.get_traced_memory()[1] - base
            digest = hashlib.sha256(value).digest()
            del value
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            with storage.open_read(key) as stream:
                loaded = pickle.load(stream)
            read = tracemalloc.get_traced_memory()[1] - base - len(loaded)  # less the value
        finally:
            tracemalloc.stop()
        assert hashlib.sha256(loaded).digest() == digest
        assert written <= self.holds_at_most, f"held {written / MIB:.0f} MiB writing"
        assert read <= self.holds_at_most, f"held {read / MIB:.0f} MiB reading"


def _read_in_pieces(stream, size: int) -> bytes:
    pieces = []
    while piece := stream.read(size):
        pieces.append(piece)
    return b"".join(pieces)
