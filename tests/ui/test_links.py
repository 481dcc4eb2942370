"""Where the task links point: console pages for object stores, file URLs for paths."""

from __future__ import annotations

import pytest

from dagster_airflow.storage.base import browse_url
from dagster_airflow.storage.filesystem import FilesystemStorage
from tests.test_boundaries import imported_after


@pytest.mark.parametrize(
    ("uri", "folder", "url"),
    [
        (
            "s3://bucket/prefix/run/step/result",
            False,
            "https://s3.console.aws.amazon.com/s3/object/bucket?prefix=prefix/run/step/result",
        ),
        (
            "s3://bucket/run/step/",
            True,
            "https://s3.console.aws.amazon.com/s3/buckets/bucket?prefix=run/step/",
        ),
        (
            "gs://bucket/prefix/run/step/result",
            False,
            "https://console.cloud.google.com/storage/browser/_details/bucket/prefix/run/step/result",
        ),
        (
            "gs://bucket/run/step/",
            True,
            "https://console.cloud.google.com/storage/browser/bucket/run/step/",
        ),
        ("/data/a run/step/result", False, "file:///data/a%20run/step/result"),
        ("/data/run/step", True, "file:///data/run/step/"),
        ("https://example.invalid/x", False, "https://example.invalid/x"),
    ],
)
def test_browse_url(uri, folder, url):
    assert browse_url(uri, folder) == url


def test_a_storage_browses_its_own_keys(tmp_path):
    storage = FilesystemStorage(base_dir=str(tmp_path))
    assert storage.browse_url("run/step/result") == f"file://{tmp_path}/run/step/result"


def test_the_airflow_plugin_imports_no_dagster():
    modules = imported_after("import dagster_airflow.ui.airflow_plugin")
    assert "airflow.plugins_manager" in modules
    assert not [m for m in modules if m.split(".")[0] == "dagster"]
