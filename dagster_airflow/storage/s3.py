"""S3 storage (boto3): outputs as objects under ``s3://{bucket}/{prefix}/{run_id}/...``.

Also any S3-compatible store through ``endpoint_url``. Credentials come from an Airflow
connection at execute time and reach the worker as the standard ``AWS_*`` environment variables,
so the worker's boto3 finds them through its default chain; with no connection at all the
worker's own chain (instance profile, task role, ~/.aws) applies.

Writes stream through a multipart upload holding a bounded number of parts in memory (one being
filled, a few being sent); the object appears only when the upload completes, and an upload that
fails is aborted. Reads stream the response body.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
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
DEFAULT_CONN_ID = "aws_default"
PART_SIZE = 8 * 1024 * 1024  # S3 wants at least 5 MiB for every part but the last
# Parts uploaded at once, as boto3's transfer manager does; memory: (this + 1) * PART_SIZE.
MAX_CONCURRENCY = 4
READ_CHUNK = 1024 * 1024
# Each part carries its CRC32 and the completed object one over all of them, as boto3's transfer
# manager does: S3 checks the whole upload, and completes it faster than one with no checksum.
CHECKSUM = "CRC32"

_NO_BUCKET = {"NoSuchBucket"}
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
_DENIED = {"AccessDenied", "AllAccessDisabled", "AccountProblem", "Forbidden", "403"}
_BAD_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
}


_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def _bucket_fix(bucket: str) -> str | None:
    """Why S3 would refuse the bucket name, as a fix; None when it is fine."""
    if bucket.startswith("s3://"):
        name = bucket[5:].split("/")[0]
        return f"write bucket={name!r} (a name, not a URL) and put any path in 'prefix'"
    if _BUCKET_NAME.match(bucket) and ".." not in bucket and not _IP_ADDRESS.match(bucket):
        return None
    return (
        "S3 bucket names have 3 to 63 lower-case letters, digits, '.' and '-', begin and end "
        "with a letter or digit, and are not IP addresses; use the bucket's name as S3 shows it"
    )


_field = OptionFields("the s3 storage")


@attrs.frozen
class S3Options:
    bucket: str = _field.string(
        "bucket", example="my-bucket", check=_bucket_fix, expected="a bucket name"
    )
    prefix: str = _field.any("prefix", default=DEFAULT_PREFIX)
    region_name: str | None = _field.string("region_name", default=None, example="eu-west-1")
    endpoint_url: str | None = _field.url(
        "endpoint_url",
        "write it as an http(s) address such as http://127.0.0.1:9000",
        default=None,
        example="http://127.0.0.1:9000",
    )
    aws_conn_id: str = _field.string("aws_conn_id", default=DEFAULT_CONN_ID, example="aws_default")

    def __attrs_post_init__(self) -> None:
        check_prefix(_field, self.prefix)


class S3Storage(Configured, IntermediateStorage):
    """Outputs in an S3 bucket. Its options (S3Options):

    :param bucket: the bucket (it must exist; the connection's credentials need read, write and
        list on ``{prefix}/*``).
    :param prefix: the key prefix of every run's outputs.
    :param region_name: the bucket's region; default: the connection's ``region_name`` extra,
        then the worker's AWS configuration.
    :param endpoint_url: an S3-compatible endpoint; default: the connection's ``endpoint_url``
        extra, then AWS.
    :param aws_conn_id: the Airflow connection holding the credentials.
    """

    name = "s3"
    options_class = S3Options

    def configure(self) -> None:
        self.prefix = (self.options.prefix or "").strip("/")
        self.part_size = PART_SIZE
        self.max_concurrency = MAX_CONCURRENCY
        self._client = None

    @classmethod
    def scaffold_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        return {"prefix": DEFAULT_PREFIX, "aws_conn_id": DEFAULT_CONN_ID, **options}

    # -- Airflow side --------------------------------------------------------------------------

    def credentials_env(self, get_connection: ConnectionGetter) -> dict[str, str]:
        conn = Connection.parse(get_connection(self.aws_conn_id), self.aws_conn_id)
        if conn is None:
            log.info(
                "No Airflow connection %r: the step uses boto3's default credential chain",
                self.aws_conn_id,
            )
            return {}
        extra = conn.extra
        key_id = conn.login or extra.get("aws_access_key_id")
        secret = conn.password or extra.get("aws_secret_access_key")
        if bool(key_id) != bool(secret):
            missing = "password (secret access key)" if key_id else "login (access key id)"
            raise ConfigurationError(
                f"Airflow connection {self.aws_conn_id!r} has an AWS key id or secret but no "
                f"{missing}; set both, or neither to use the worker's default credentials."
            )
        env = {
            "AWS_ACCESS_KEY_ID": key_id,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_SESSION_TOKEN": extra.get("aws_session_token"),
            "AWS_DEFAULT_REGION": extra.get("region_name"),
            "AWS_ENDPOINT_URL_S3": extra.get("endpoint_url"),
        }
        return {name: str(value) for name, value in env.items() if value}

    # -- Dagster side --------------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            # region and endpoint: the options, else AWS_DEFAULT_REGION / AWS_ENDPOINT_URL_S3
            # from the connection (botocore reads both from the environment, or they come with
            # the credentials a reader was given).
            given = self.credentials or {}
            session = boto3.session.Session(
                aws_access_key_id=given.get("AWS_ACCESS_KEY_ID"),
                aws_secret_access_key=given.get("AWS_SECRET_ACCESS_KEY"),
                aws_session_token=given.get("AWS_SESSION_TOKEN"),
                region_name=given.get("AWS_DEFAULT_REGION"),
            )
            self._client = session.client(
                "s3",
                region_name=self.region_name,
                endpoint_url=self.endpoint_url or given.get("AWS_ENDPOINT_URL_S3"),
                config=Config(retries={"max_attempts": 5, "mode": "standard"}),
            )
        return self._client

    def object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_key(key)}"

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        writer = _MultipartWriter(self, self.object_key(key))
        try:
            yield writer
            writer.commit()
        except BaseException:
            writer.abort()
            raise

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        with self.errors():
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
            except self.client.exceptions.NoSuchKey:
                raise OutputNotFoundError(f"no object at {self.uri(key)!r}.") from None
        body = response["Body"]
        # Buffered over a raw stream of the body: a large read() fills one result buffer a chunk
        # at a time instead of joining chunks into a second copy.
        stream = io.BufferedReader(_BodyReader(body), buffer_size=READ_CHUNK)
        try:
            with self.errors():
                yield stream
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        with self.errors():
            try:
                self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in _NOT_FOUND:
                    raise
            else:
                return True
            # HEAD says 404 for a missing bucket too: tell the two apart. (A policy that allows
            # listing only under the prefix denies HeadBucket: then the bucket exists.)
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                    raise self.client_error("NoSuchBucket", "") from exc
        return False

    def stat(self, key: str) -> ObjectStat:
        from botocore.exceptions import ClientError

        with self.errors():
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in _NOT_FOUND:
                    raise
                head = None
        if head is None:
            self.exists(key)  # HEAD says 404 for a missing bucket too: this raises for that
            raise OutputNotFoundError(f"no object at {self.uri(key)!r}.")
        return ObjectStat(size=head["ContentLength"], modified=head["LastModified"].timestamp())

    def list(self, prefix: str) -> Iterator[str]:
        root = self.object_key(prefix.strip("/")) + "/"
        start = len(self.prefix) + 1 if self.prefix else 0
        keys = []
        with self.errors():
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=root
            )
            for page in pages:
                keys.extend(item["Key"][start:] for item in page.get("Contents", ()))
        return iter(sorted(keys))

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn boto3's errors about the bucket or the credentials into one clear sentence."""
        from botocore.exceptions import (
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise self.client_error(error.get("Code", ""), error.get("Message", "")) from exc
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise StorageError(
                f"no AWS credentials for S3 bucket {self.bucket!r}: define the Airflow "
                f"connection {self.aws_conn_id!r} (login = access key id, password = secret "
                "access key), or give the step's worker a default AWS credential chain."
            ) from exc
        except EndpointConnectionError as exc:
            raise StorageError(
                f"cannot reach S3 at {exc.kwargs.get('endpoint_url')!r} for bucket "
                f"{self.bucket!r} (connection {self.aws_conn_id!r}); check the endpoint_url "
                "option or extra and the network."
            ) from exc

    def client_error(self, code: str, message: str) -> StorageError:
        where = f"S3 bucket {self.bucket!r} (Airflow connection {self.aws_conn_id!r})"
        if code in _NO_BUCKET:
            return StorageError(
                f"{where} does not exist; create the bucket or fix the storage's 'bucket' option."
            )
        if code in _BAD_CREDENTIALS:
            return StorageError(
                f"the credentials of Airflow connection {self.aws_conn_id!r} were rejected by "
                f"S3 bucket {self.bucket!r} ({code}: {message}); fix the connection's login "
                "(access key id) and password (secret access key)."
            )
        if code in _DENIED:
            return StorageError(
                f"access to {where} was denied; grant the connection's user s3:GetObject, "
                f"s3:PutObject, s3:AbortMultipartUpload on {self.bucket}/{self.prefix or '*'}/* "
                "and s3:ListBucket on the bucket (docs/storage.md has the policy)."
            )
        return StorageError(f"{where} answered {code}: {message}")


class _BodyReader(io.RawIOBase):
    """A raw stream over a botocore StreamingBody, for io.BufferedReader."""

    def __init__(self, body) -> None:
        self.body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.body.read(min(len(buffer), READ_CHUNK))
        size = len(data)
        buffer[:size] = data
        return size


class _MultipartWriter(io.RawIOBase):
    """Buffers one part and uploads full parts, up to ``max_concurrency`` of them at a time, so
    memory stays under (max_concurrency + 1) parts. A small object is a single PUT at commit."""

    def __init__(self, storage: S3Storage, object_key: str) -> None:
        self.storage = storage
        self.object_key = object_key
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []
        self.in_flight: set[Future] = set()
        self.part_count = 0
        self.executor: ThreadPoolExecutor | None = None
        self.size = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        written = len(view)
        part_size = self.storage.part_size
        while view:
            room = part_size - len(self.buffer)
            self.buffer += view[:room]
            view = view[room:]
            if len(self.buffer) >= part_size:
                self._upload_part()
        self.size += written
        return written

    def _call(self, method: str, **kwargs):
        storage = self.storage
        with storage.errors():
            return getattr(storage.client, method)(
                Bucket=storage.bucket, Key=self.object_key, **kwargs
            )

    def _send_part(self, number: int, body: bytes) -> None:
        response = self._call(
            "upload_part",
            UploadId=self.upload_id,
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm=CHECKSUM,
        )
        part = {"PartNumber": number, "ETag": response["ETag"]}
        if checksum := response.get(f"Checksum{CHECKSUM}"):
            part[f"Checksum{CHECKSUM}"] = checksum
        self.parts.append(part)

    def _wait(self, return_when: str) -> None:
        done, self.in_flight = wait(self.in_flight, return_when=return_when)
        for future in done:
            future.result()  # a failed part fails the write

    def _upload_part(self) -> None:
        if self.upload_id is None:
            self.upload_id = self._call("create_multipart_upload", ChecksumAlgorithm=CHECKSUM)[
                "UploadId"
            ]
            self.executor = ThreadPoolExecutor(
                self.storage.max_concurrency, thread_name_prefix="s3-part"
            )
        self.part_count += 1
        number = self.part_count
        body, self.buffer = bytes(self.buffer), bytearray()
        while len(self.in_flight) >= self.storage.max_concurrency:
            self._wait(FIRST_COMPLETED)
        self.in_flight.add(self.executor.submit(self._send_part, number, body))

    def commit(self) -> None:
        if self.upload_id is None:
            self._call("put_object", Body=bytes(self.buffer))
        else:
            if self.buffer:
                self._upload_part()
            self._wait(ALL_COMPLETED)
            self._call(
                "complete_multipart_upload",
                UploadId=self.upload_id,
                MultipartUpload={"Parts": sorted(self.parts, key=lambda p: p["PartNumber"])},
            )
            self.upload_id = None
            # Only after a multipart write: a killed writer of this key left parts only if it
            # too wrote more than a part, and a small object's single PUT stays one request.
            self._abort_abandoned()
        self.buffer = bytearray()
        self._shutdown()

    def _abort_abandoned(self) -> None:
        """Abort the unfinished multipart uploads of this key: a writer killed midway (its
        process died before it could abort) leaves its parts stored, and billed, for good."""
        try:
            pages = self.storage.client.get_paginator("list_multipart_uploads")
            for page in pages.paginate(Bucket=self.storage.bucket, Prefix=self.object_key):
                for upload in page.get("Uploads", ()):
                    if upload["Key"] == self.object_key:
                        self._call("abort_multipart_upload", UploadId=upload["UploadId"])
        except Exception as exc:  # the object is committed; the parts only cost storage
            log.warning(
                "Could not abort unfinished uploads of %s (%s); a lifecycle rule "
                "(AbortIncompleteMultipartUpload) removes them",
                self.object_key,
                exc,
            )

    def _shutdown(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None
        self.in_flight = set()

    def abort(self) -> None:
        """Drop the upload: nothing was visible, and nothing will be."""
        self.buffer = bytearray()
        self._shutdown()
        upload_id, self.upload_id = self.upload_id, None
        if upload_id is None:
            return
        try:
            self._call("abort_multipart_upload", UploadId=upload_id)
        except Exception:
            # The object was never completed, so nothing is visible; a lifecycle rule
            # (AbortIncompleteMultipartUpload) removes the parts.
            log.warning("Could not abort the multipart upload of %s", self.object_key)


@hookimpl
def dagster_airflow_register_storages(register):
    register(S3Storage)
