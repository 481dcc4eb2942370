"""Peak memory of a step whose output is large: streamed, so never a copy of the whole object.

For each storage (filesystem; S3 on a moto server and GCS on the emulator, both started here on
loopback), a step returns a 300 MiB bytes value and a downstream step loads it, each in its own
`dagster-airflow execute-step` process, as the subprocess runner starts it. The peak RSS of each
process (os.wait4's ru_maxrss) is compared with the same step's when its value is tiny, measured
in the same run, plus the object: the target is at most 1.2 times that, on write and on read.

    python bench/memory.py [--size-mib 300] [--storage filesystem s3 gcs]

``main()`` returns the rows (bench/measure.py's Row) for bench/run.py's table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import BIN, Row, print_table

from harness import servers

MIB = 1024 * 1024
BUCKET = "bench-memory"
TARGET = "<= 1.2"

JOB = '''"""bench/memory.py's job: one op returns `size` bytes, the next one loads them."""

import dagster as dg


@dg.op(config_schema={"size": int})
def produce(context) -> bytes:
    return b"x" * context.op_config["size"]  # every page written, so it counts in RSS


@dg.op
def consume(value: bytes) -> int:
    return len(value)


@dg.job
def memory():
    consume(produce())
'''


def _peak_rss(request_json: str, env: dict[str, str], folder: Path) -> int:
    """The peak RSS in bytes of one `dagster-airflow execute-step` process."""
    import subprocess

    request = folder / f"request-{uuid.uuid4()}.json"
    request.write_text(request_json)
    log = folder / "steps.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [str(BIN / "dagster-airflow"), "execute-step", "--request-file", str(request)],
            env=env,
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"the step failed ({process.returncode}); see {log}")
    return usage.ru_maxrss * 1024  # KiB on Linux


def _peaks(job_file: Path, spec, env: dict[str, str], size: int, folder: Path) -> dict[str, int]:
    """The peak RSS of the writing step and of the reading step, for an output of ``size``."""
    from dagster_airflow.model import CodeLocation, StepRequest

    run_id = str(uuid.uuid4())
    peaks = {}
    for step in ("produce", "consume"):
        request = StepRequest(
            code_location=CodeLocation(python_file=str(job_file)),
            job_name="memory",
            step_key=step,
            run_id=run_id,
            run_config={"ops": {"produce": {"config": {"size": size}}}},
            storage=spec,
        )
        peaks[step] = _peak_rss(request.to_json(), env, folder)
    return peaks


@contextlib.contextmanager
def _storage(name: str, folder: Path) -> Iterator[tuple[object, dict[str, str]]]:
    """The storage spec of a step, and the environment its worker gets (the credentials)."""
    from dagster_airflow.model import StorageSpec

    if name == "filesystem":
        yield StorageSpec("filesystem", {"base_dir": str(folder / "storage")}), {}
    elif name == "s3":
        import boto3

        with servers.moto_server() as endpoint:
            env = {**servers.MOTO_CREDENTIALS, "AWS_ENDPOINT_URL_S3": endpoint}
            client = boto3.client(
                "s3",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            )
            client.create_bucket(Bucket=BUCKET)
            yield StorageSpec("s3", {"bucket": BUCKET}), env
    elif name == "gcs":
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        with servers.gcs_emulator_server() as endpoint:
            storage.Client(
                project="bench",
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": endpoint},
            ).create_bucket(BUCKET)
            yield StorageSpec("gcs", {"bucket": BUCKET}), {"STORAGE_EMULATOR_HOST": endpoint}
    else:
        raise ValueError(f"no storage {name!r} in this benchmark: filesystem, s3 or gcs")


def main(size_mib: int = 300, storages: tuple[str, ...] = ("filesystem", "s3", "gcs")) -> list[Row]:
    size = size_mib * MIB
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        folder = Path(tmp)
        job_file = folder / "memory_job.py"
        job_file.write_text(JOB)
        for name in storages:
            with _storage(name, folder) as (spec, credentials):
                env = {**os.environ, **credentials, "PYTHONUNBUFFERED": "1"}
                tiny = _peaks(job_file, spec, env, 16, folder)
                large = _peaks(job_file, spec, env, size, folder)
            for step, what in (("produce", "write"), ("consume", "read")):
                rows.append(
                    Row(
                        benchmark=f"{name} {size_mib} MiB output: peak RSS, {what}",
                        ours=large[step] / MIB,
                        baseline=(tiny[step] + size) / MIB,
                        unit="MiB",
                        target=TARGET,
                        baseline_name=f"tiny output's step + {size_mib} MiB",
                    )
                )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=300)
    parser.add_argument("--storage", nargs="+", default=["filesystem", "s3", "gcs"])
    args = parser.parse_args()
    print_table(main(args.size_mib, tuple(args.storage)))
