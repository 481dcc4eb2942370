"""S3 storage against a real moto server on loopback: the contract, streaming, credentials."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest

from dagster_airflow.errors import ConfigurationError, StorageError
from dagster_airflow.storage.s3 import S3Storage
from dagster_airflow.testing.contracts import StorageContract
from harness import servers

BUCKET = "dagster-airflow-tests"
MIB = 1024 * 1024


def s3_client(endpoint: str, **credentials):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=credentials.get("key", "testing"),
        aws_secret_access_key=credentials.get("secret", "testing"),
    )


@pytest.fixture(scope="module")
def bucket(moto_server) -> str:
    s3_client(moto_server).create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture
def aws_env(monkeypatch, moto_server):
    """What the runner gives the worker: the connection's credentials as AWS_* variables."""
    storage = S3Storage(bucket="unused")
    env = storage.credentials_env(
        lambda conn_id: {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"region_name": "us-east-1", "endpoint_url": moto_server},
        }
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def storage(bucket, aws_env) -> S3Storage:
    return S3Storage(bucket=bucket, prefix=f"tests/{uuid.uuid4()}")


class TestS3StorageContract(StorageContract):
    # Not checked here: test_a_200_mb_output_streams_with_bounded_memory measures it, in a fresh
    # process and with an object large enough for S3's parts in flight.
    holds_at_most = None


def test_uri_and_object_layout(storage, moto_server):
    key = storage.key("run", "step", "result")
    storage.put_bytes(key, b"data")
    assert storage.uri(key) == f"s3://{BUCKET}/{storage.prefix}/run/step/result"
    body = s3_client(moto_server).get_object(Bucket=BUCKET, Key=f"{storage.prefix}/run/step/result")
    assert body["Body"].read() == b"data"


def test_a_large_write_is_multipart_and_invisible_until_complete(storage, moto_server):
    storage.part_size = 5 * MIB  # S3's smallest part
    key = storage.key("run", "step", "result")
    chunk = os.urandom(MIB)
    with storage.open_write(key) as stream:
        for _ in range(12):
            stream.write(chunk)
        assert not storage.exists(key), "a partial upload is visible"
        uploads = s3_client(moto_server).list_multipart_uploads(
            Bucket=BUCKET, Prefix=storage.prefix
        )
        assert len(uploads.get("Uploads", [])) == 1
    assert storage.get_bytes(key) == chunk * 12
    head = s3_client(moto_server).head_object(
        Bucket=BUCKET, Key=f"{storage.prefix}/{key}", ChecksumMode="ENABLED"
    )
    assert head["ETag"].endswith('-3"'), "not a 3-part multipart upload"
    # S3 checked every part and the whole against their CRC32, as for boto3's upload_fileobj.
    assert head.get("ChecksumCRC32"), "the object was completed without a checksum"


def test_a_failed_multipart_write_is_aborted(storage, moto_server):
    storage.part_size = 5 * MIB
    key = storage.key("run", "step", "result")
    storage.put_bytes(key, b"first")
    with pytest.raises(RuntimeError), storage.open_write(key) as stream:
        stream.write(b"x" * 11 * MIB)
        raise RuntimeError("the writer died")
    assert storage.get_bytes(key) == b"first"
    uploads = s3_client(moto_server).list_multipart_uploads(Bucket=BUCKET, Prefix=storage.prefix)
    assert uploads.get("Uploads", []) == []


# The worker's side of a 200 MB output, in a fresh process so that nothing else is counted.
MEMORY_SCRIPT = """
import hashlib, json, os, pickle, sys, tracemalloc
from dagster_airflow.storage.s3 import S3Storage

storage = S3Storage(bucket=sys.argv[1], prefix=sys.argv[2])
storage.exists("warm-up")  # the client and its models are loaded before measuring
size, chunk = int(sys.argv[3]), os.urandom(1 << 20)
key = storage.key("run", "step", "result")
tracemalloc.start()
written = hashlib.sha256()
with storage.open_write(key) as stream:
    for _ in range(size >> 20):
        stream.write(chunk)
        written.update(chunk)
write_peak = tracemalloc.get_traced_memory()[1]
tracemalloc.reset_peak()
read = hashlib.sha256()
with storage.open_read(key) as stream:
    while block := stream.read(1 << 20):
        read.update(block)
read_peak = tracemalloc.get_traced_memory()[1]
tracemalloc.reset_peak()
# What the IO manager does: pickle one 200 MB value, then load it back.
value = bytes(size)
base = tracemalloc.get_traced_memory()[0]
with storage.open_write(key) as stream:
    pickle.dump(value, stream, protocol=pickle.HIGHEST_PROTOCOL)
dump_peak = tracemalloc.get_traced_memory()[1] - base
del value
tracemalloc.reset_peak()
base = tracemalloc.get_traced_memory()[0]
with storage.open_read(key) as stream:
    loaded = pickle.load(stream)
load_peak = tracemalloc.get_traced_memory()[1] - base
print(json.dumps({
    "same": written.digest() == read.digest() and len(loaded) == size,
    "write_peak": write_peak, "read_peak": read_peak,
    "dump_peak": dump_peak, "load_peak": load_peak,
}))
"""


def test_a_200_mb_output_streams_with_bounded_memory(bucket, aws_env):
    size = 200 * MIB
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, bucket, f"tests/{uuid.uuid4()}", str(size)],
        env={**os.environ, **aws_env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    peaks = json.loads(done.stdout.strip().splitlines()[-1])
    assert peaks["same"]
    # Streaming: one 8 MiB part being filled and at most 4 being sent; one chunk for reads.
    parts = (S3Storage(bucket="bkt").max_concurrency + 1) * 8 * MIB
    assert peaks["write_peak"] < parts + 16 * MIB, peaks
    assert peaks["read_peak"] < 16 * MIB, peaks
    # Pickling a value already in memory adds parts, not a copy; loading holds one copy.
    assert peaks["dump_peak"] < parts + 16 * MIB, peaks
    assert peaks["load_peak"] < size + 16 * MIB, peaks


# -- credentials from the Airflow connection ---------------------------------------------------


def connections(**by_id):
    return lambda conn_id: by_id.get(conn_id)


def test_credentials_come_from_login_password_and_extras():
    storage = S3Storage(bucket="bkt", aws_conn_id="my_aws")
    conn = {
        "conn_type": "aws",
        "login": "AKIAEXAMPLE",
        "password": "s3cr3t",
        "extra": {
            "region_name": "eu-west-1",
            "endpoint_url": "http://127.0.0.1:9000",
            "aws_session_token": "tok",
        },
    }
    assert storage.credentials_env(connections(my_aws=conn)) == {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t",
        "AWS_SESSION_TOKEN": "tok",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000",
    }


def test_credentials_in_extras_as_the_2019_readme_had_them():
    extra = json.dumps(
        {"aws_access_key_id": "AKIAOLD", "aws_secret_access_key": "old", "region_name": "us-west-2"}
    )
    env = S3Storage(bucket="bkt").credentials_env(
        connections(aws_default={"conn_type": "aws", "extra": extra})
    )
    assert env == {
        "AWS_ACCESS_KEY_ID": "AKIAOLD",
        "AWS_SECRET_ACCESS_KEY": "old",
        "AWS_DEFAULT_REGION": "us-west-2",
    }


def test_no_connection_leaves_boto3s_default_chain():
    assert S3Storage(bucket="bkt").credentials_env(connections()) == {}


def test_a_key_id_without_secret_is_one_clear_sentence():
    conn = {"conn_type": "aws", "login": "AKIAEXAMPLE", "password": None, "extra": {}}
    with pytest.raises(ConfigurationError, match=r"connection 'aws_default' has an AWS key id"):
        S3Storage(bucket="bkt").credentials_env(connections(aws_default=conn))


def test_a_bucket_url_is_refused_with_the_fix():
    with pytest.raises(ConfigurationError, match=r"got 's3://b/p'; write bucket='b'"):
        S3Storage(bucket="s3://b/p")


def test_importing_the_backend_imports_no_boto3():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, dagster_airflow.storage.s3; print('boto3' in sys.modules)",
        ],
        capture_output=True,
        text=True,
    )
    assert done.stdout.strip() == "False", done.stderr


# -- errors naming the bucket and the connection, from a moto server that checks credentials ---


DOCS = Path(__file__).resolve().parents[2] / "docs" / "storage.md"


def docs_block(language: str) -> str:
    """The last code block of docs/storage.md in that language (earlier ones are fragments)."""
    return re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(), re.S)[-1]


@pytest.fixture(scope="module")
def strict_moto(tmp_path_factory):
    """A moto server that authenticates every request and enforces IAM after the set-up calls.

    Yields the endpoint, a user with no permission at all, and one with the documented policy.
    """
    log_path = tmp_path_factory.mktemp("strict-moto") / "moto.log"
    env = {"INITIAL_NO_AUTH_ACTION_COUNT": "6"}
    with servers.moto_server(env=env, log_path=log_path) as url:
        iam = boto3.client(
            "iam",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        iam.create_user(UserName="nobody")
        nobody = iam.create_access_key(UserName="nobody")["AccessKey"]
        s3_client(url).create_bucket(Bucket="strict")
        iam.create_user(UserName="steps")
        policy = docs_block("json").replace("my-dagster-bucket", "strict")
        iam.put_user_policy(UserName="steps", PolicyName="dagster-airflow", PolicyDocument=policy)
        steps = iam.create_access_key(UserName="steps")["AccessKey"]
        yield {
            "url": url,
            "nobody": (nobody["AccessKeyId"], nobody["SecretAccessKey"]),
            "steps": (steps["AccessKeyId"], steps["SecretAccessKey"]),
        }


def strict_storage(monkeypatch, endpoint, key_id, secret, prefix="dagster-airflow") -> S3Storage:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return S3Storage(bucket="strict", prefix=prefix, endpoint_url=endpoint, aws_conn_id="team_aws")


class TestS3UnderTheDocumentedPolicy(StorageContract):
    """docs/storage.md's least-privilege policy is enough for everything the storage does."""

    @pytest.fixture
    def storage(self, strict_moto, monkeypatch):
        prefix = f"dagster-airflow/{uuid.uuid4()}"
        return strict_storage(monkeypatch, strict_moto["url"], *strict_moto["steps"], prefix)

    def test_multipart_writes_and_aborts(self, storage, run_id):
        storage.part_size = 5 * MIB
        key = storage.key(run_id, "step", "result")
        storage.put_bytes(key, b"x" * 11 * MIB)
        with pytest.raises(RuntimeError), storage.open_write(key) as stream:
            stream.write(b"y" * 11 * MIB)
            raise RuntimeError("the writer died")
        assert storage.get_bytes(key) == b"x" * 11 * MIB

    def test_a_killed_writers_upload_is_aborted_by_the_next_write(self, storage, run_id, caplog):
        key = storage.key(run_id, "step", "result")
        client, bucket, object_key = storage.client, storage.bucket, storage.object_key(key)
        # What a writer killed after its first part leaves: an upload nobody will complete.
        upload = client.create_multipart_upload(Bucket=bucket, Key=object_key)["UploadId"]
        client.upload_part(
            Bucket=bucket, Key=object_key, UploadId=upload, PartNumber=1, Body=b"z" * 5 * MIB
        )
        other_key = storage.object_key(storage.key(run_id, "step", "result2"))
        other = client.create_multipart_upload(Bucket=bucket, Key=other_key)["UploadId"]

        storage.part_size = 5 * MIB
        storage.put_bytes(key, b"r" * 11 * MIB)  # the retry, as large as the killed write

        uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=storage.prefix)
        assert [u["UploadId"] for u in uploads.get("Uploads", ())] == [other]
        assert "Could not abort" not in caplog.text
        assert storage.get_bytes(key) == b"r" * 11 * MIB

    def test_nothing_outside_the_prefix(self, strict_moto, monkeypatch):
        url, (key_id, secret) = strict_moto["url"], strict_moto["steps"]
        storage = strict_storage(monkeypatch, url, key_id, secret, prefix="elsewhere")
        with pytest.raises(StorageError, match=r"^access to S3 bucket 'strict'"):
            storage.put_bytes(storage.key("run", "step", "result"), b"x")


def test_the_docs_scaffold_command_writes_the_storage_block_shown():
    import shlex

    from tests.conftest import run_cli

    text = DOCS.read_text()
    command = re.search(r"```console\n\$ (dagster-airflow scaffold .*?)\n```", text).group(1)
    shown = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    done = run_cli(*shlex.split(command)[1:])
    assert done.returncode == 0, done.stderr
    assert shown.strip().replace("\n", "\n    ") in done.stdout


def test_the_docs_example_browses_a_run(moto_server, aws_env):
    from dagster_airflow.model import dagster_run_id

    s3_client(moto_server).create_bucket(Bucket="my-dagster-bucket")
    storage = S3Storage(bucket="my-dagster-bucket", prefix="dagster-airflow")
    run_id = dagster_run_id("demo_pipeline", "manual__2026-11-25T10:00:00+00:00")
    for step in ("count_letters", "summarize"):
        storage.put_bytes(storage.key(run_id, step, "result"), pickle.dumps({"step": step}))
    done = subprocess.run(
        [sys.executable, "-c", docs_block("python")],
        env={**os.environ, **aws_env},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    root = f"s3://my-dagster-bucket/dagster-airflow/{run_id}"
    size = {step: len(pickle.dumps({"step": step})) for step in ("count_letters", "summarize")}
    assert done.stdout.splitlines() == [
        f"{root}/count_letters/result {size['count_letters']}",
        f"{root}/summarize/result {size['summarize']}",
        "{'step': 'summarize'}",
    ]


def test_access_denied_names_bucket_and_connection(strict_moto, monkeypatch):
    storage = strict_storage(monkeypatch, strict_moto["url"], *strict_moto["nobody"])
    with pytest.raises(StorageError) as caught:
        storage.put_bytes(storage.key("run", "step", "result"), b"x")
    assert str(caught.value).startswith(
        "access to S3 bucket 'strict' (Airflow connection 'team_aws') was denied; grant"
    )


@pytest.mark.parametrize("wrong", ["key id", "secret"])
def test_bad_credentials_name_bucket_and_connection(strict_moto, monkeypatch, wrong):
    url, (key_id, secret) = strict_moto["url"], strict_moto["nobody"]
    if wrong == "key id":
        key_id = "AKIANOSUCHKEY0000000"
    else:
        secret = "not-the-secret"
    storage = strict_storage(monkeypatch, url, key_id, secret)
    with pytest.raises(StorageError) as caught:
        storage.get_bytes(storage.key("run", "step", "result"))
    message = str(caught.value)
    assert message.startswith(
        "the credentials of Airflow connection 'team_aws' were rejected by S3 bucket 'strict'"
    )
    assert message.endswith(
        "fix the connection's login (access key id) and password (secret access key)."
    )
    assert secret not in message


def test_a_missing_bucket_names_bucket_and_connection(aws_env):
    storage = S3Storage(bucket="no-such-bucket", aws_conn_id="team_aws")
    message = (
        "S3 bucket 'no-such-bucket' (Airflow connection 'team_aws') does not exist; create the "
        "bucket or fix the storage's 'bucket' option."
    )
    with pytest.raises(StorageError) as caught:
        storage.put_bytes(storage.key("run", "step", "result"), b"x")
    assert str(caught.value) == message
    with pytest.raises(StorageError) as caught:
        storage.get_bytes(storage.key("run", "step", "result"))
    assert str(caught.value) == message
    with pytest.raises(StorageError) as caught:
        storage.exists(storage.key("run", "step", "result"))
    assert str(caught.value) == message


KILLED_WRITER = """
import sys, time
from dagster_airflow.storage.s3 import S3Storage

storage = S3Storage(bucket=sys.argv[1], prefix=sys.argv[2])
storage.part_size = 5 << 20
with storage.open_write(storage.key("run", "step", "result")) as stream:
    stream.write(b"x" * (16 << 20))  # three parts sent, one being filled
    print("midway", flush=True)
    time.sleep(600)
"""


def test_a_writer_killed_midway_leaves_no_object(storage, aws_env):
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, storage.bucket, storage.prefix],
        env={**os.environ, **aws_env},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "midway"
    finally:
        writer.kill()
        writer.wait()
    assert not storage.exists(storage.key("run", "step", "result"))
    assert list(storage.list("run")) == []


def test_a_reader_given_credentials_uses_them_and_not_the_environment(strict_moto, monkeypatch):
    """The step view on the api-server reads each DAG's storage with that DAG's connection, and
    never through its own environment (it serves every DAG at once)."""
    url, (key_id, secret) = strict_moto["url"], strict_moto["steps"]
    writer = strict_storage(monkeypatch, url, key_id, secret)
    key = writer.key(str(uuid.uuid4()), "step", "result")
    writer.put_bytes(key, b"written by the step")
    # The environment holds a user with no permission; the connection, the permitted one.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", strict_moto["nobody"][0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", strict_moto["nobody"][1])
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    connection = {
        "conn_type": "aws",
        "login": key_id,
        "password": secret,
        "extra": {"region_name": "us-east-1", "endpoint_url": url},
    }
    reader = S3Storage(bucket="strict", aws_conn_id="team_aws")
    reader.use_credentials(reader.credentials_env(connections(team_aws=connection)))
    assert reader.get_bytes(key) == b"written by the step"
    with pytest.raises(StorageError, match="was denied"):  # the environment's user, as before
        strict_storage(monkeypatch, url, *strict_moto["nobody"]).get_bytes(key)
