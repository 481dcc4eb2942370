"""A large output is pickled straight into the storage and unpickled straight from it, and its
preview reads only its ends: the step holds the object and a bounded part more, never a copy.

Measured in process with tracemalloc around Dagster's own materialization, against the same
assets with a tiny value in the same test (bench/output_memory.py measures a step's peak RSS)."""

import pickle
import tracemalloc

import dagster as dg
import pytest

from dagster_airflow.redaction import Redactor
from dagster_airflow.storage.filesystem import FilesystemStorage
from dagster_airflow.worker.io_manager import IntermediateIOManager, intermediate_io_manager
from dagster_airflow.worker.output_preview import PREVIEW_CHARS

MIB = 1024 * 1024
SIZE = 48 * MIB
SECRET = "SECRET-hunter2-SECRET"
# What the step may hold beyond the value itself: pickling frames, a file's buffer, Dagster.
SLACK = 8 * MIB


def assets_of(size: int):
    @dg.asset
    def payload() -> bytearray:
        # Made in place (bytes would be concatenated through copies). The secret at both ends,
        # where the preview looks: it must be redacted there too.
        value = bytearray(len(SECRET) + size + len(SECRET))
        value[: len(SECRET)] = value[-len(SECRET) :] = SECRET.encode()
        return value

    @dg.asset
    def payload_size(payload: bytearray) -> int:
        return len(payload)

    return [payload, payload_size]


def peak_of(assets, selection, io_manager) -> int:
    """The peak of Python's allocations while Dagster materializes ``selection``."""
    tracemalloc.start()
    try:
        result = dg.materialize(
            assets,
            selection=selection,
            resources={"io_manager": intermediate_io_manager(io_manager)},
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.success
    return peak


@pytest.mark.parametrize("size", [SIZE])
def test_a_large_output_is_written_and_read_without_a_copy(tmp_path, size):
    storage = FilesystemStorage(base_dir=str(tmp_path))
    redact = Redactor([SECRET]).text
    peaks = {}
    for label, n in (("tiny", 16), ("large", size)):
        assets = assets_of(n)
        writer = IntermediateIOManager(storage, run_id=f"run-{label}", redact=redact)
        write = peak_of(assets, ["payload"], writer)
        read = peak_of(
            assets, ["payload_size"], IntermediateIOManager(storage, run_id=f"run-{label}")
        )
        peaks[label] = (write, read, writer)

    (tiny_write, tiny_read, _), (write, read, writer) = peaks["tiny"], peaks["large"]
    value = size + 2 * len(SECRET)
    assert write - tiny_write < value + SLACK, f"writing held {(write - tiny_write) / MIB:.0f} MiB"
    assert read - tiny_read < value + SLACK, f"reading held {(read - tiny_read) / MIB:.0f} MiB"

    # The run's copy and the asset's copy are the same pickle, written in one pass.
    stored = tmp_path / "run-large" / "payload" / "result"
    assert (
        tmp_path / "assets" / "payload" / "__unpartitioned__"
    ).read_bytes() == stored.read_bytes()
    with stored.open("rb") as stream:
        assert len(pickle.load(stream)) == value

    preview = writer.previews[("result", None)]
    assert preview["size"] == stored.stat().st_size
    assert preview["type"] == "bytearray"
    assert len(preview["preview"]) <= PREVIEW_CHARS
    text = preview["preview"]
    assert text.startswith("bytearray(b'***\\x00") and text.endswith("\\x00***')"), text
    assert "hunter" not in preview["preview"] and "SE" not in preview["preview"]
