"""S3 storage benchmark: our streaming storage against raw boto3, in the same run.

Writes and reads a 200 MB output through ``S3Storage`` (multipart upload, streamed body) and
through boto3's ``upload_fileobj`` / ``download_fileobj`` against a moto server this script
starts on loopback, then prints the throughput ratio (ours / boto3; target at least 0.9 both
ways) and the peak Python memory of each (tracemalloc, in a second pass so that tracing does
not slow the timed one).

    python bench/storage.py [--size-mb 200] [--repeat 3]

``main()`` returns the rows (dicts: bench, case, ours_s, baseline_s, ratio, ours_peak_mb,
baseline_peak_mb) for bench/run.py.
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

from dagster_airflow.testing import servers

BUCKET = "bench"
CHUNK = 1024 * 1024
MB = 1000 * 1000


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


def main(size_mb: int = 200, repeat: int = 3) -> list[dict]:
    import boto3

    from dagster_airflow.storage.s3 import S3Storage

    saved = {name: os.environ.get(name) for name in servers.MOTO_CREDENTIALS}
    os.environ.update(servers.MOTO_CREDENTIALS)  # what the runner gives a worker
    try:
        return _run(size_mb, repeat, S3Storage, boto3)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run(size_mb: int, repeat: int, S3Storage, boto3) -> list[dict]:
    with servers.moto_server() as endpoint, tempfile.TemporaryDirectory() as tmp:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        storage = S3Storage(bucket=BUCKET, prefix="ours", endpoint_url=endpoint)
        source = Path(tmp) / "output.bin"
        with open(source, "wb") as out:
            for _ in range(size_mb * MB // CHUNK):
                out.write(os.urandom(CHUNK))
        size = source.stat().st_size
        expected = _sha256(source)
        target = Path(tmp) / "read.bin"
        cases = _cases(storage, client, source, target, str(uuid.uuid4()))

        rows = []
        for case in ("write", "read"):

            def check(name, case=case):
                if case == "read" and _sha256(target) != expected:
                    raise RuntimeError(f"{name}'s read returned other bytes than were written")

            times = _timed(cases[case], repeat, check)
            ours_s, base_s = times["ours"], times["boto3"]
            rows.append(
                {
                    "bench": "storage",
                    "case": f"s3 {case} {size / MB:.0f} MB (ours vs boto3 {case} fileobj)",
                    "ours_s": round(ours_s, 3),
                    "baseline_s": round(base_s, 3),
                    "ratio": round(base_s / ours_s, 2),  # throughput ours / boto3
                    "ours_mb_s": round(size / MB / ours_s, 1),
                    "baseline_mb_s": round(size / MB / base_s, 1),
                    "ours_peak_mb": round(_peak(cases[case]["ours"]) / MB, 1),
                    "baseline_peak_mb": round(_peak(cases[case]["boto3"]) / MB, 1),
                }
            )
        return rows


def print_rows(rows: list[dict]) -> None:
    print(
        f"{'case':<52} {'ours MB/s':>10} {'boto3 MB/s':>11} {'ratio':>6} "
        f"{'ours peak MB':>13} {'boto3 peak MB':>14}"
    )
    for row in rows:
        print(
            f"{row['case']:<52} {row['ours_mb_s']:>10} {row['baseline_mb_s']:>11} "
            f"{row['ratio']:>6} {row['ours_peak_mb']:>13} {row['baseline_peak_mb']:>14}"
        )
    print("ratio: throughput of our S3 storage / raw boto3 (target >= 0.9)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print_rows(main(args.size_mb, args.repeat))
