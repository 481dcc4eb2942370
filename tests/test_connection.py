"""The Connection wire type: an Airflow connection, its extra parsed once, for every storage
and runner."""

from __future__ import annotations

import json

import pytest

from dagster_airflow.connection import Connection
from dagster_airflow.errors import ConfigurationError
from dagster_airflow.storage.gcs import KEYFILE_ENV, PROJECT_ENV, GCSStorage
from dagster_airflow.storage.s3 import S3Storage


def test_an_extra_as_json_text_or_a_mapping_parses_to_the_same_connection():
    fields = {"conn_type": "aws", "login": "AKIA", "password": "s3cret"}
    extra = {"region_name": "eu-west-1", "endpoint_url": "http://127.0.0.1:9000"}
    text = Connection.parse({**fields, "extra": json.dumps(extra)}, "aws_default")
    mapping = Connection.parse({**fields, "extra": extra}, "aws_default")
    assert text == mapping and text.extra == extra and text.login == "AKIA"
    assert Connection.parse(text) is text and Connection.parse(None) is None
    assert "s3cret" not in repr(text)
    assert text.get("login") == "AKIA" and text["password"] == "s3cret"


@pytest.mark.parametrize("extra", ["not json", "[1, 2]"])
def test_an_extra_that_is_not_a_json_object_is_one_sentence(extra):
    with pytest.raises(ConfigurationError) as caught:
        Connection.parse({"conn_type": "aws", "extra": extra}, "aws_default")
    assert str(caught.value) == (
        "the extra of Airflow connection 'aws_default' is not a JSON object; write it as "
        '{"region_name": "eu-west-1"}.'
    )


def test_s3_reads_its_credentials_from_the_parsed_extra():
    conn = {
        "conn_type": "aws",
        "extra": json.dumps(
            {
                "aws_access_key_id": "AKIA",
                "aws_secret_access_key": "s3cret",
                "region_name": "eu-west-1",
                "endpoint_url": "http://127.0.0.1:9000",
            }
        ),
    }
    env = S3Storage(bucket="my-bucket").credentials_env({"aws_default": conn}.get)
    assert env == {
        "AWS_ACCESS_KEY_ID": "AKIA",
        "AWS_SECRET_ACCESS_KEY": "s3cret",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000",
    }


def test_gcs_reads_its_key_and_project_from_the_parsed_extra_legacy_names_included():
    key = {"type": "service_account", "client_email": "a@b.iam", "private_key": "k"}
    extra = {"extra__google_cloud_platform__keyfile_dict": json.dumps(key), "project": "p1"}
    conn = Connection.parse({"conn_type": "google_cloud_platform", "extra": extra}, "gcp")
    env = GCSStorage(bucket="my-bucket", gcp_conn_id="gcp").credentials_env({"gcp": conn}.get)
    assert json.loads(env[KEYFILE_ENV]) == key
    assert env[PROJECT_ENV] == "p1"
