"""The step view on a real api-server (scheduler, DAG processor, api-server, LocalExecutor):
behind Airflow's own authentication, reached from the task's links, and never unpickling."""

from __future__ import annotations

import json
import re

import pytest

from dagster_airflow.distribution import AIRFLOW_PLUGIN
from harness.airflow_deployment import AirflowDeployment
from tests.conftest import ROOT
from tests.ui.test_step_view import PARTITION, view_job_dag

pytestmark = pytest.mark.airflow

DAG_ID = "view_auth"
RUN_ID = "view-auth-1"
PAGE = f"/dagster-airflow/steps/{DAG_ID}/{RUN_ID}"
API = f"/dagster-airflow/api/steps/{DAG_ID}/{RUN_ID}"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, airflow_deployment: AirflowDeployment):
    """The session's deployment (tests/conftest.py), with one run of the view's job."""
    tmp = tmp_path_factory.mktemp("view-auth")
    text, marker = view_job_dag(DAG_ID, tmp, "filesystem", f"base_dir={tmp / 'storage'}")
    airflow = airflow_deployment
    airflow.install(text, f"{DAG_ID}.py")
    airflow.wait_for_dag(DAG_ID)
    airflow.trigger(DAG_ID, RUN_ID, {"partition": PARTITION})
    assert airflow.wait_for_run(DAG_ID, RUN_ID) == "failed"  # its step "broken" fails
    return airflow, marker


@pytest.mark.parametrize("path", [f"{PAGE}/words?map_index=-1", f"{API}/words"])
def test_without_credentials_the_view_answers_401(deployment, path):
    airflow, _ = deployment
    status, body = airflow.http("GET", path)
    assert status == 401, body
    assert "dagster-timeline" not in body


def test_a_bad_token_or_session_is_refused(deployment):
    airflow, _ = deployment
    forged = airflow.token[:-4] + ("AAAA" if not airflow.token.endswith("AAAA") else "BBBB")
    status, body = airflow.http("GET", f"{PAGE}/words", {"Authorization": f"Bearer {forged}"})
    assert status == 403, body
    status, body = airflow.http("GET", f"{PAGE}/words", {"Cookie": f"_token={forged}"})
    assert status in (401, 403), body
    assert "dagster-timeline" not in body


def test_a_bearer_token_and_the_uis_session_cookie_are_let_in(deployment):
    airflow, _ = deployment
    for headers in (
        {"Authorization": f"Bearer {airflow.token}"},
        {"Cookie": f"_token={airflow.token}"},
    ):
        status, body = airflow.http("GET", f"{PAGE}/words?map_index=-1", headers)
        assert status == 200, body
        assert 'data-testid="dagster-timeline"' in body
        assert 'data-testid="dagster-output-preview"' in body


def test_the_api_server_shows_a_preview_and_never_unpickles(deployment):
    airflow, marker = deployment
    status, body = airflow.http("GET", f"{API}/trap", {"Authorization": f"Bearer {airflow.token}"})
    assert status == 200, body
    (output,) = json.loads(body)["outputs"]
    assert (output["type"], output["preview"]) == ("step_view.Trap", "Trap(rows=500)")
    # Unpickling a Trap writes its marker: the api-server never did (nor did anyone: trap's
    # output has no downstream step).
    assert not marker.exists()


def test_the_filesystem_links_open_the_view_and_the_ui_offers_its_tab(deployment):
    airflow, _ = deployment
    status, links = airflow.rest(
        "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{RUN_ID}/taskInstances/words/links"
    )
    assert status == 200, links
    url = links["extra_links"]["Dagster outputs"]
    assert url == f"{airflow.base}{PAGE}/words?map_index=-1&try_number=1"
    assert links["extra_links"]["Dagster event log"] == url
    status, body = airflow.http(
        "GET", url.removeprefix(airflow.base), {"Authorization": f"Bearer {airflow.token}"}
    )
    assert status == 200 and "Dagster step <code>words</code>" in body

    status, plugins = airflow.rest("GET", "/api/v2/plugins")
    assert status == 200, plugins
    (plugin,) = [p for p in plugins["plugins"] if p["name"] == AIRFLOW_PLUGIN]
    (tab,) = plugin["external_views"]
    assert tab["destination"] == "task_instance" and tab["url_route"] == "dagster-step"
    assert tab["href"] == "/dagster-airflow/steps/{DAG_ID}/{RUN_ID}/{TASK_ID}?map_index={MAP_INDEX}"


def test_the_docs_example_reads_a_steps_outputs(deployment):
    """docs/ui.md's example, run as written against the real api-server."""
    airflow, _ = deployment
    page = (ROOT / "docs" / "ui.md").read_text()
    example = re.search(r"```python\n(.*?)```", page, re.S).group(1)
    call = (
        "\nimport json, sys\n"
        "print(json.dumps(step_outputs(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], "
        "sys.argv[5])))\n"
    )
    done = airflow.run_python(example + call, airflow.base, airflow.token, DAG_ID, RUN_ID, "trap")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"result": "Trap(rows=500)"}
