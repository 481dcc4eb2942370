"""GCS storage (google-cloud-storage): outputs under ``gs://{bucket}/{prefix}/{run_id}/...``.

Credentials come from an Airflow connection at execute time (a service account key file JSON in
its extras) and reach the worker as environment variables; with no key in the connection, or no
connection, the worker uses application default credentials. ``STORAGE_EMULATOR_HOST`` in the
worker's environment points the client at an emulator, without credentials.

Writes go through a resumable upload: the object exists only once the last chunk is sent, and a
writer that fails cancels the upload, so nothing partial is ever visible. Both ways the client
is handed at most a chunk at a time (its writer would copy a large write whole into its buffer,
and its reader download a large read whole), so a step holds about two chunks of an object.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import attrs

from dagster_airflow.connection import Connection
from dagster_airflow.errors import ConfigurationError, OutputNotFoundError, StorageError
from dagster_airflow.keys import check_key
from dagster_airflow.options import Configured, OptionFields, check_prefix
from dagster_airflow.plugins import hookimpl
from dagster_airflow.storage.base import ConnectionGetter, IntermediateStorage, ObjectStat

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "dagster-airflow"
DEFAULT_CONN_ID = "google_cloud_default"
# The worker's variables: the key file's JSON itself (the Airflow machine's key_path may not
# exist where the step runs) and the project.
KEYFILE_ENV = "DAGSTER_AIRFLOW_GCP_KEYFILE_JSON"
PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
CHUNK_SIZE = 8 * 1024 * 1024  # a multiple of 256 KiB, as resumable uploads require
SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)


_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


def _bucket_fix(bucket: str) -> str | None:
    """Why GCS would refuse the bucket name, as a fix; None when it is fine."""
    if bucket.startswith("gs://"):
        name = bucket[5:].split("/")[0]
        return f"write bucket={name!r} (a name, not a URL) and put any path in 'prefix'"
    parts = bucket.split(".")
    if (
        _BUCKET_NAME.match(bucket)
        and all(0 < len(part) <= 63 for part in parts)
        and (len(bucket) <= 63 or "." in bucket)
        and not bucket.startswith("goog")
    ):
        return None
    return (
        "GCS bucket names have 3 to 63 lower-case letters, digits, '-', '_' and '.', and begin "
        "and end with a letter or digit; use the bucket's name as the console shows it"
    )


_field = OptionFields("the gcs storage")


@attrs.frozen
class GCSOptions:
    bucket: str = _field.string(
        "bucket", example="my-bucket", check=_bucket_fix, expected="a bucket name"
    )
    prefix: str = _field.any("prefix", default=DEFAULT_PREFIX)
    project: str | None = _field.string("project", default=None, example="my-project")
    gcp_conn_id: str = _field.string(
        "gcp_conn_id", default=DEFAULT_CONN_ID, example="google_cloud_default"
    )

    def __attrs_post_init__(self) -> None:
        check_prefix(_field, self.prefix)


class GCSStorage(Configured, IntermediateStorage):
    """Outputs in a Google Cloud Storage bucket. Its options (GCSOptions):

    :param bucket: the bucket (it must exist).
    :param prefix: the object name prefix of every run's outputs.
    :param project: the Google Cloud project; default: the connection's, then the key file's.
    :param gcp_conn_id: the Airflow connection holding the service account key.
    """

    name = "gcs"
    options_class = GCSOptions

    def configure(self) -> None:
        self.prefix = (self.options.prefix or "").strip("/")
        self.chunk_size = CHUNK_SIZE
        self._client = None

    @classmethod
    def scaffold_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        return {"prefix": DEFAULT_PREFIX, "gcp_conn_id": DEFAULT_CONN_ID, **options}

    # -- Airflow side --------------------------------------------------------------------------

    def credentials_env(self, get_connection: ConnectionGetter) -> dict[str, str]:
        conn = Connection.parse(get_connection(self.gcp_conn_id), self.gcp_conn_id)
        if conn is None:
            log.info(
                "No Airflow connection %r: the step uses application default credentials",
                self.gcp_conn_id,
            )
            return {}
        extra = without_legacy_prefix(conn.extra)
        env = {}
        keyfile = extra.get("keyfile_dict")
        key_path = extra.get("key_path")
        if keyfile:
            env[KEYFILE_ENV] = self._keyfile_json(keyfile, "keyfile_dict")
        elif key_path:
            try:
                text = Path(key_path).expanduser().read_text()
            except OSError as exc:
                raise ConfigurationError(
                    f"Airflow connection {self.gcp_conn_id!r} names the key file {key_path!r}, "
                    f"which cannot be read ({exc.strerror}); fix key_path or use keyfile_dict."
                ) from None
            env[KEYFILE_ENV] = self._keyfile_json(text, "key_path")
        project = extra.get("project")
        if project:
            env[PROJECT_ENV] = str(project)
        return env

    def _keyfile_json(self, value: Any, field: str) -> str:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                value = None
        if not isinstance(value, Mapping) or "type" not in value:
            raise ConfigurationError(
                f"the {field} of Airflow connection {self.gcp_conn_id!r} is not a service "
                "account key file JSON; paste the key file downloaded from the Google Cloud "
                "console."
            )
        return json.dumps(dict(value))

    # -- Dagster side --------------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            from google.cloud import storage

            credentials = None
            info = self.credential(KEYFILE_ENV)
            if info:
                from google.oauth2 import service_account

                try:
                    credentials = service_account.Credentials.from_service_account_info(
                        json.loads(info), scopes=SCOPES
                    )
                except ValueError as exc:
                    raise StorageError(
                        f"the service account key of Airflow connection {self.gcp_conn_id!r} "
                        f"for GCS bucket {self.bucket!r} is not usable ({exc}); download a new "
                        "key file into the connection."
                    ) from None
            project = self.project or self.credential(PROJECT_ENV)
            if project is None and credentials is not None:
                project = credentials.project_id
            with self.errors():
                self._client = storage.Client(project=project, credentials=credentials)
        return self._client

    def object_name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"gs://{self.bucket}/{self.object_name(key)}"

    def _blob(self, key: str):
        return self.client.bucket(self.bucket).blob(self.object_name(key))

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        blob = self._blob(key)
        # A resumable upload, finalized by the last chunk when the block exits cleanly and
        # cancelled (BlobWriter.terminate) when it raises.
        with (
            self.errors(),
            blob.open("wb", chunk_size=self.chunk_size, ignore_flush=True) as stream,
        ):
            yield _ChunkedWriter(stream, self.chunk_size)

    def _found_blob(self, key: str):
        """The blob with its metadata loaded; OutputNotFoundError when there is none (call it
        inside ``errors()``: a missing bucket raises NotFound)."""
        from google.api_core.exceptions import NotFound

        blob = self._blob(key)
        try:
            blob.reload()
        except NotFound:
            if not self.client.bucket(self.bucket).exists():
                raise
            raise OutputNotFoundError(f"no object at {self.uri(key)!r}.") from None
        return blob

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        with self.errors():
            blob = self._found_blob(key)
            # Pinned to the generation just found: a concurrent rewrite cannot mix two versions.
            with blob.open("rb", chunk_size=self.chunk_size) as stream:
                # Buffered over a raw stream: a large read (pickle's of a large bytes) fills the
                # caller's buffer a chunk at a time instead of downloading and joining it whole.
                yield io.BufferedReader(_ChunkedReader(stream, self.chunk_size), self.chunk_size)

    def exists(self, key: str) -> bool:
        from google.api_core.exceptions import NotFound

        with self.errors():
            if self._blob(key).exists():
                return True
            # exists() says False for a missing bucket too: tell the two apart.
            if not self.client.bucket(self.bucket).exists():
                raise NotFound(f"bucket {self.bucket}")
        return False

    def stat(self, key: str) -> ObjectStat:
        with self.errors():
            blob = self._found_blob(key)
        return ObjectStat(size=blob.size, modified=blob.updated.timestamp())

    def list(self, prefix: str) -> Iterator[str]:
        root = self.object_name(prefix.strip("/")) + "/"
        start = len(self.prefix) + 1 if self.prefix else 0
        with self.errors():
            names = [blob.name[start:] for blob in self.client.list_blobs(self.bucket, prefix=root)]
        return iter(sorted(names))

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn the client's errors about the bucket or the credentials into one sentence."""
        from google.api_core import exceptions as api
        from google.auth import exceptions as auth
        from google.cloud.storage.exceptions import InvalidResponse

        where = f"GCS bucket {self.bucket!r} (Airflow connection {self.gcp_conn_id!r})"
        try:
            try:
                yield
            except InvalidResponse as exc:
                # Resumable uploads report HTTP errors in their own type: raise the usual one.
                status = getattr(exc.response, "status_code", 0)
                raise api.from_http_status(status, str(exc.args[0])) from exc
        except api.NotFound as exc:
            raise StorageError(
                f"{where} does not exist; create the bucket or fix the storage's 'bucket' option."
            ) from exc
        except api.Unauthorized as exc:
            raise self.bad_credentials(str(exc.message)) from exc
        except api.Forbidden as exc:
            raise StorageError(
                f"access to {where} was denied; grant the connection's service account the "
                "roles/storage.objectUser role on the bucket (docs/storage.md)."
            ) from exc
        except auth.DefaultCredentialsError as exc:
            raise StorageError(
                f"no Google Cloud credentials for {where}: put a service account key file JSON "
                "in the connection's keyfile_dict extra, or give the step's worker application "
                "default credentials."
            ) from exc
        except (auth.RefreshError, auth.TransportError) as exc:
            raise self.bad_credentials(str(exc)) from exc

    def bad_credentials(self, detail: str) -> StorageError:
        return StorageError(
            f"the credentials of Airflow connection {self.gcp_conn_id!r} were rejected for GCS "
            f"bucket {self.bucket!r} ({detail.splitlines()[0] if detail else 'no detail'}); put "
            "a valid service account key file JSON in the connection's keyfile_dict extra."
        )


class _ChunkedWriter(io.RawIOBase):
    """Hands the client's BlobWriter at most a chunk per write: it copies each write whole into
    its buffer before uploading, so a 300 MiB write would be held twice."""

    def __init__(self, writer: BinaryIO, chunk_size: int) -> None:
        self.writer = writer
        self.chunk_size = chunk_size
        self.size = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        for start in range(0, len(view), self.chunk_size):
            self.writer.write(view[start : start + self.chunk_size])
        self.size += len(view)
        return len(view)


class _ChunkedReader(io.RawIOBase):
    """A raw stream over the client's BlobReader, asking it for at most a chunk per read."""

    def __init__(self, reader: BinaryIO, chunk_size: int) -> None:
        self.reader = reader
        self.chunk_size = chunk_size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.reader.read(min(len(buffer), self.chunk_size))
        size = len(data)
        buffer[:size] = data
        return size


def without_legacy_prefix(extra: Mapping[str, Any]) -> dict[str, Any]:
    """The extra with the fields older Airflow versions prefixed under their plain names."""
    # Older Airflow versions prefixed every field: extra__google_cloud_platform__keyfile_dict.
    legacy = "extra__google_cloud_platform__"
    return {
        **{k[len(legacy) :]: v for k, v in extra.items() if k.startswith(legacy) and v},
        **{k: v for k, v in extra.items() if not k.startswith(legacy)},
    }


@hookimpl
def dagster_airflow_register_storages(register):
    register(GCSStorage)
