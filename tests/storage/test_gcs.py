"""GCS storage against a real gcp-storage-emulator on loopback: the contract, credentials."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from dagster_airflow.errors import ConfigurationError, StorageError
from dagster_airflow.storage.gcs import EMULATOR_ENV, KEYFILE_ENV, PROJECT_ENV, GCSStorage
from dagster_airflow.testing.contracts import StorageContract

BUCKET = "dagster-airflow-tests"
MIB = 1024 * 1024


def emulator_client(endpoint: str):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project="test",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
    )


@pytest.fixture(scope="module")
def bucket(gcs_emulator) -> str:
    emulator_client(gcs_emulator).create_bucket(BUCKET)
    return BUCKET


@pytest.fixture
def emulator_env(monkeypatch, gcs_emulator):
    monkeypatch.setenv(EMULATOR_ENV, gcs_emulator)


@pytest.fixture
def storage(bucket, emulator_env) -> GCSStorage:
    return GCSStorage(bucket=bucket, prefix=f"tests/{uuid.uuid4()}")


class TestGCSStorageContract(StorageContract):
    # The client's writer buffers a chunk (8 MiB) beside the one it is handed; its reader
    # downloads a chunk, which is copied into the unpickler's buffer.
    holds_at_most = 40 * MIB


def test_uri_and_object_layout(storage, gcs_emulator):
    key = storage.key("run", "step", "result")
    storage.put_bytes(key, b"data")
    assert storage.uri(key) == f"gs://{BUCKET}/{storage.prefix}/run/step/result"
    blob = emulator_client(gcs_emulator).bucket(BUCKET).blob(f"{storage.prefix}/run/step/result")
    assert blob.download_as_bytes() == b"data"


def test_a_chunked_upload_is_invisible_until_finalized(storage):
    storage.chunk_size = 256 * 1024  # several chunks for a small object
    key = storage.key("run", "step", "result")
    data = bytes(range(256)) * 4096  # 1 MiB
    with storage.open_write(key) as stream:
        stream.write(data)
        stream.write(data)
        assert not storage.exists(key), "a partial upload is visible"
    assert storage.get_bytes(key) == data * 2


def test_a_failed_chunked_write_keeps_the_previous_object(storage):
    storage.chunk_size = 256 * 1024
    key = storage.key("run", "step", "result")
    storage.put_bytes(key, b"first")
    with pytest.raises(RuntimeError), storage.open_write(key) as stream:
        stream.write(b"x" * 3 * MIB)
        raise RuntimeError("the writer died")
    assert storage.get_bytes(key) == b"first"
    assert list(storage.list("run")) == ["run/step/result"]


# -- credentials from the Airflow connection ---------------------------------------------------


def service_account_info(token_uri: str = "https://oauth2.googleapis.com/token") -> dict:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": "key-project",
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": "steps@key-project.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }


def connections(**by_id):
    return lambda conn_id: by_id.get(conn_id)


def test_the_key_file_json_and_project_come_from_the_extras(tmp_path):
    info = service_account_info()
    storage = GCSStorage(bucket="bkt")
    for extra in (
        {"keyfile_dict": json.dumps(info), "project": "p"},
        {"keyfile_dict": info, "project": "p"},
        {"extra__google_cloud_platform__keyfile_dict": json.dumps(info), "project": "p"},
    ):
        env = storage.credentials_env(
            connections(google_cloud_default={"conn_type": "google_cloud_platform", "extra": extra})
        )
        assert json.loads(env.pop(KEYFILE_ENV)) == info
        assert env == {PROJECT_ENV: "p"}

    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(info))
    env = storage.credentials_env(
        connections(google_cloud_default={"extra": {"key_path": str(key_file)}})
    )
    assert json.loads(env[KEYFILE_ENV]) == info


def test_no_connection_or_no_key_means_application_default_credentials():
    storage = GCSStorage(bucket="bkt")
    assert storage.credentials_env(connections()) == {}
    assert storage.credentials_env(connections(google_cloud_default={"extra": {}})) == {}


def test_a_key_that_is_not_json_is_one_clear_sentence():
    storage = GCSStorage(bucket="bkt", gcp_conn_id="gcp")
    with pytest.raises(ConfigurationError) as caught:
        storage.credentials_env(connections(gcp={"extra": {"keyfile_dict": "not json, a secret"}}))
    assert str(caught.value) == (
        "the keyfile_dict of Airflow connection 'gcp' is not a service account key file JSON; "
        "paste the key file downloaded from the Google Cloud console."
    )


def test_a_bucket_url_is_refused():
    with pytest.raises(ConfigurationError, match=r"got 'gs://b/p'"):
        GCSStorage(bucket="gs://b/p")


def test_importing_the_backend_imports_no_google_cloud():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, dagster_airflow.storage.gcs; "
            "print(any(m.startswith('google') for m in sys.modules))",
        ],
        capture_output=True,
        text=True,
    )
    assert done.stdout.strip() == "False", done.stderr


# -- errors naming the bucket and the connection -----------------------------------------------


def test_a_missing_bucket_names_bucket_and_connection(emulator_env):
    storage = GCSStorage(bucket="no-such-bucket", gcp_conn_id="team_gcp")
    message = (
        "GCS bucket 'no-such-bucket' (Airflow connection 'team_gcp') does not exist; create the "
        "bucket or fix the storage's 'bucket' option."
    )
    with pytest.raises(StorageError) as caught:
        storage.get_bytes(storage.key("run", "step", "result"))
    assert str(caught.value) == message
    with pytest.raises(StorageError) as caught:
        storage.exists(storage.key("run", "step", "result"))
    assert str(caught.value) == message
    with pytest.raises(StorageError) as caught:
        storage.put_bytes(storage.key("run", "step", "result"), b"x")
    assert str(caught.value) == message


def test_rejected_credentials_name_bucket_and_connection(bucket, emulator_env, monkeypatch):
    # A well-formed key whose token exchange fails: its token endpoint (on the emulator, so on
    # loopback) answers no token.
    info = service_account_info(token_uri=os.environ[EMULATOR_ENV] + "/token")
    monkeypatch.setenv(KEYFILE_ENV, json.dumps(info))
    storage = GCSStorage(bucket=bucket, gcp_conn_id="team_gcp")
    with pytest.raises(StorageError) as caught:
        storage.get_bytes(storage.key("run", "step", "result"))
    message = str(caught.value)
    assert message.startswith(
        "the credentials of Airflow connection 'team_gcp' were rejected for GCS bucket "
        f"{bucket!r} ("
    )
    assert message.endswith(
        "put a valid service account key file JSON in the connection's keyfile_dict extra."
    )
    assert info["private_key"] not in message


def test_access_denied_names_bucket_and_connection():
    # The emulator grants everything, so the 403 is the client library's own exception.
    from google.api_core.exceptions import Forbidden

    storage = GCSStorage(bucket="locked", gcp_conn_id="team_gcp")
    with pytest.raises(StorageError) as caught, storage.errors():
        raise Forbidden("steps@p.iam.gserviceaccount.com does not have storage.objects.get")
    assert str(caught.value) == (
        "access to GCS bucket 'locked' (Airflow connection 'team_gcp') was denied; grant the "
        "connection's service account the roles/storage.objectUser role on the bucket "
        "(docs/storage.md)."
    )


KILLED_WRITER = """
import sys, time
from dagster_airflow.storage.gcs import GCSStorage

storage = GCSStorage(bucket=sys.argv[1], prefix=sys.argv[2])
storage.chunk_size = 256 << 10
with storage.open_write(storage.key("run", "step", "result")) as stream:
    stream.write(b"x" * (3 << 20))  # several chunks sent
    print("midway", flush=True)
    time.sleep(600)
"""


def test_a_writer_killed_midway_leaves_no_object(storage):
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, storage.bucket, storage.prefix],
        env=dict(os.environ),
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
