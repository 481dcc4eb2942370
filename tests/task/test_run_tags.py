"""A DAG run's Dagster tags from its conf: what a sensor's RunRequest puts there
(``dag_run.conf["dagster_tags"]``, dagster_airflow.task.sensor) becomes the tags of the Dagster
run, as Dagster tags the run a sensor requests; a malformed value is one sentence."""

from __future__ import annotations

import pytest

from dagster_airflow.errors import ConfigurationError
from dagster_airflow.run_conf import TAGS_KEY, run_tags_from_conf


def test_the_confs_tags_are_the_dagster_runs():
    conf = {"ops": {}, "partition": "west", TAGS_KEY: {"source": "inbox", "region": "west"}}
    assert run_tags_from_conf(conf) == {"source": "inbox", "region": "west"}
    assert run_tags_from_conf({"partition": "west"}) == {}


@pytest.mark.parametrize("tags", [["a"], {"team": 3}, "team=sales"])
def test_tags_that_are_not_strings_by_name_are_one_sentence(tags):
    with pytest.raises(ConfigurationError) as raised:
        run_tags_from_conf({TAGS_KEY: tags})
    message = str(raised.value)
    assert message.startswith(f'dag_run.conf["dagster_tags"] is {tags!r}, not a mapping')
    assert message.count(". ") == 0 and message.endswith("}}.")
