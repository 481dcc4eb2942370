"""S3 storage benchmark: our streaming storage against raw boto3, in the same run.

Writes and reads a 200 MiB output through ``S3Storage`` (multipart upload, streamed body) and
through boto3's ``upload_fileobj`` / ``download_fileobj`` against a moto server this script
starts on loopback, then prints the throughput ratio (ours / boto3; target at least 0.9 both
ways) and the peak Python memory of each (tracemalloc, in a second pass so that tracing does
not slow the timed one).

    python bench/storage.py [--size-mib 200] [--repeat 3]

``main()`` returns the rows (bench/measure.py's Row) for bench/run.py's table.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import Row, print_table

from harness import servers

BUCKET = "bench"
CHUNK = 1024 * 1024
MB = 1024 * 1024  # sizes and rates in MiB


def _copy(source, write: Callable) -> None:
    while block := source.read(CHUNK):
        write(block)


def _cases(storage, client, source: Path, target: Path, run: str) -> dict[str, dict[str, Callable]]:
    key = storage.key(run, "step", "result")
    raw_key = f"raw/{run}/result"

    def ours_write():
        with open(source, "rb") as stream, storage.open_write(key) as out:
            _copy(stream, out.write)

    def boto3_write():
        with open(source, "rb") as stream:
            client.upload_fileobj(stream, BUCKET, raw_key)

    # Both reads land in a file (download_fileobj needs a seekable one: it writes ranges in
    # parallel); the bytes are checked afterwards, outside the timing.
    def ours_read():
        with storage.open_read(key) as stream, open(target, "wb") as out:
            _copy(stream, out.write)

    def boto3_read():
        with open(target, "wb") as out:
            client.download_fileobj(BUCKET, raw_key, out)

    return {
        "write": {"ours": ours_write, "boto3": boto3_write},
        "read": {"ours": ours_read, "boto3": boto3_read},
    }


def _timed(fns: dict[str, Callable], repeat: int, check: Callable) -> dict[str, float]:
    """The best time of each, taking turns (and turns at going first) so that a busy moment of
    the machine or of the server does not favour either."""
    best = dict.fromkeys(fns, float("inf"))
    for turn in range(repeat):
        for name in list(fns)[:: 1 if turn % 2 == 0 else -1]:
            started = time.perf_counter()
            fns[name]()
            best[name] = min(best[name], time.perf_counter() - started)
            check(name)
    return best


def _source(path: Path, size_mib: int) -> Path:
    with open(path, "wb") as out:
        for _ in range(size_mib):
            out.write(os.urandom(CHUNK))
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        _copy(stream, digest.update)
    return digest.hexdigest()


def _peak(fn: Callable) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main(size_mib: int = 200, repeat: int = 3) -> list[Row]:
    import boto3

    from dagster_airflow.storage.s3 import S3Storage

    saved = {name: os.environ.get(name) for name in servers.MOTO_CREDENTIALS}
    os.environ.update(servers.MOTO_CREDENTIALS)  # what the runner gives a worker
    try:
        return _run(size_mib, repeat, S3Storage, boto3)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run(size_mib: int, repeat: int, S3Storage, boto3) -> list[Row]:
    with servers.moto_server() as endpoint, tempfile.TemporaryDirectory() as tmp:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        storage = S3Storage(bucket=BUCKET, prefix="ours", endpoint_url=endpoint)
        target = Path(tmp) / "read.bin"
        # A 16 MiB round of each first: loading botocore's models, starting threads and the
        # server's first multipart upload are not what we measure.
        warm_up = _source(Path(tmp) / "warm-up.bin", 16)
        for fns in _cases(storage, client, warm_up, target, "warm-up").values():
            for fn in fns.values():
                fn()
        source = _source(Path(tmp) / "output.bin", size_mib)
        size = source.stat().st_size
        expected = _sha256(source)
        cases = _cases(storage, client, source, target, str(uuid.uuid4()))

        rows = []
        for case in ("write", "read"):

            def check(name, case=case):
                if case == "read" and _sha256(target) != expected:
                    raise RuntimeError(f"{name}'s read returned other bytes than were written")

            times = _timed(cases[case], repeat, check)
            what = f"s3 {case} of {size / MB:.0f} MiB"
            fileobj = "upload_fileobj" if case == "write" else "download_fileobj"
            rows.append(
                Row(
                    f"{what}, throughput MiB/s",
                    size / MB / times["ours"],
                    size / MB / times["boto3"],
                    "",
                    ">= 0.9",
                    f"boto3 {fileobj} against the same moto server (best of {repeat})",
                )
            )
            rows.append(
                Row(
                    f"{what}, peak Python memory MiB",
                    _peak(cases[case]["ours"]) / MB,
                    _peak(cases[case]["boto3"]) / MB,
                    "",
                    "",
                    f"boto3 {fileobj} (tracemalloc, in a second, untimed pass)",
                )
            )
        return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print_table(main(args.size_mib, args.repeat))
