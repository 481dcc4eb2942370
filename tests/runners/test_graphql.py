"""The graphql runner against a real dagster-webserver on loopback, and through a real Airflow."""

from __future__ import annotations

import itertools
import logging
import pickle
import re
import shlex

import httpx
import pytest
import yaml

from dagster_airflow.errors import RunnerError
from dagster_airflow.model import RUN_ID_TAG, CodeLocation, StepRequest, StorageSpec
from dagster_airflow.runners.graphql import GraphQLRunner
from dagster_airflow.testing.contracts import RunnerContract
from dagster_airflow.testing.dagster_webserver import DagsterWebserver, free_port
from tests.conftest import EXAMPLES, JOBS, ROOT, run_cli, scaffold

DEPLOYMENT = JOBS / "deployment.py"
DEMO_STEPS = ["multiply_the_word", "count_letters", "reverse_word", "count_reversed", "summarize"]


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    """A Dagster deployment serving tests/jobs/deployment.py (demo and contract jobs, with
    dagster_airflow's IO manager bound), stopped by its own process group at the end."""
    server = DagsterWebserver(
        tmp_path_factory.mktemp("dagster_home"), ["-f", str(DEPLOYMENT), "-d", str(ROOT)]
    )
    with server:
        yield server


def runs_tagged(url: str, run_id: str) -> list[dict]:
    query = """
    query($tags: [ExecutionTag!]) {
      runsOrError(filter: {tags: $tags}) {
        ... on Runs { results { runId rootRunId parentRunId status stepKeysToExecute
                                tags { key value } } }
      }
    }"""
    body = httpx.post(
        f"{url}/graphql",
        json={"query": query, "variables": {"tags": [{"key": RUN_ID_TAG, "value": run_id}]}},
    ).json()
    return list(reversed(body["data"]["runsOrError"]["results"]))  # oldest first


class TestGraphQLRunnerContract(RunnerContract):
    step_timeout = 180.0

    @pytest.fixture
    def runner_factory(self, webserver):
        return lambda: GraphQLRunner(url=webserver.url, poll_interval=0.5)

    @pytest.fixture
    def storage_spec(self, tmp_path):
        return StorageSpec("filesystem", {"base_dir": str(tmp_path)})

    def test_kill_stops_a_running_step(
        self, runner_factory, code_location, storage_spec, run_id, task_log, webserver
    ):
        super().test_kill_stops_a_running_step(
            runner_factory, code_location, storage_spec, run_id, task_log
        )
        # kill() terminated the Dagster run itself, not just the wait for it.
        [run] = runs_tagged(webserver.url, run_id)
        assert run["status"] == "CANCELED"


def test_an_unreachable_webserver_is_one_sentence_naming_the_url(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    request = StepRequest(
        code_location=CodeLocation(python_file=str(DEPLOYMENT)),
        job_name="contract",
        step_key="produce",
        run_id="0e6f2b7c-2a1b-5e4f-8f3a-9c8b7a6d5e4f",
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
    )
    with pytest.raises(RunnerError) as caught:
        GraphQLRunner(url=url).run(request, {}, logging.getLogger("t"))
    message = str(caught.value)
    assert message.startswith(f"cannot reach the Dagster webserver at {url!r}")
    assert "check the graphql runner's 'url' option" in message
    assert "\n" not in message


def test_a_job_the_deployment_lacks_is_named_with_the_jobs_it_has(webserver, tmp_path):
    request = StepRequest(
        code_location=CodeLocation(python_file=str(DEPLOYMENT)),
        job_name="no_such_job",
        step_key="produce",
        run_id="0e6f2b7c-2a1b-5e4f-8f3a-9c8b7a6d5e4f",
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
    )
    with pytest.raises(RunnerError) as caught:
        GraphQLRunner(url=webserver.url).run(request, {}, logging.getLogger("t"))
    assert f"job 'no_such_job' is not on the Dagster deployment at {webserver.url!r}" in str(
        caught.value
    )
    assert "/contract" in str(caught.value)


def test_a_job_without_the_io_manager_is_refused_saying_what_to_bind(webserver, tmp_path):
    request = StepRequest(
        code_location=CodeLocation(python_file=str(DEPLOYMENT)),
        job_name="unbound",
        step_key="produce",
        run_id="0e6f2b7c-2a1b-5e4f-8f3a-9c8b7a6d5e4f",
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
    )
    with pytest.raises(RunnerError) as caught:
        GraphQLRunner(url=webserver.url).run(request, {}, logging.getLogger("t"))
    message = str(caught.value)
    assert message.startswith(
        f"job 'unbound' on the Dagster deployment at {webserver.url!r} rejected the run config: "
    )
    assert "must bind dagster_airflow's IO manager" in message


def test_the_io_manager_keys_outputs_by_the_run_id_tag_or_else_the_dagster_run(tmp_path):
    from dagster_airflow.storage.io_manager import intermediate_io_manager_from_config
    from dagster_airflow.testing.contract_job import contract

    storage = {"name": "filesystem", "base_dir": str(tmp_path)}
    run_config = {
        "ops": {"slow": {"config": {"seconds": 0}}},
        "resources": {"io_manager": {"config": {"storage": storage}}},
    }
    job = contract.with_top_level_resources({"io_manager": intermediate_io_manager_from_config})
    airflow_run = "0e6f2b7c-2a1b-5e4f-8f3a-9c8b7a6d5e4f"  # a run id the runner derived
    tagged = job.execute_in_process(
        run_config=run_config, tags={RUN_ID_TAG: airflow_run}, raise_on_error=False
    )
    assert pickle.loads((tmp_path / airflow_run / "consume" / "result").read_bytes()) == 42
    untagged = job.execute_in_process(run_config=run_config, raise_on_error=False)
    assert (tmp_path / untagged.run_id / "produce" / "result").exists()
    assert not (tmp_path / tagged.run_id).exists()


@pytest.mark.airflow
def test_demo_runs_end_to_end_through_airflow_on_the_deployment(airflow_home, webserver, tmp_path):
    storage_dir = tmp_path / "storage"
    text = scaffold(
        "demo_pipeline",
        "-f",
        str(DEPLOYMENT),
        "-e",
        str(EXAMPLES / "demo.yml"),
        "--dag-id",
        "graphql_demo",
        "--runner",
        "graphql",
        "--runner-option",
        f"url={webserver.url}",
        "--runner-option",
        "poll_interval=0.5",
        "--runner-option",
        "dagster_conn_id=dagster_test",
        "--storage",
        "filesystem",
        "--storage-option",
        f"base_dir={storage_dir}",
    )
    assert '"name": "graphql"' in text and f'"url": "{webserver.url}"' in text
    airflow_home.add_connection(
        "dagster_test", 'http://:s3cr3t-token@dagster?__extra__={"headers": {"X-Team": "data"}}'
    )
    airflow_home.install(text, "graphql_demo.py")

    result = airflow_home.dags_test("graphql_demo")

    assert result.succeeded, result.output[-3000:]
    assert result.states == dict.fromkeys(DEMO_STEPS, "success")
    from dagster_airflow.model import dagster_run_id

    run_id = dagster_run_id("graphql_demo", result.run_id)
    summary = storage_dir / run_id / "summarize" / "result"
    assert result.xcoms["summarize"] == {"result": str(summary)}
    from examples.demo import demo_pipeline

    expected = demo_pipeline.execute_in_process(
        run_config=yaml.safe_load((EXAMPLES / "demo.yml").read_text())
    ).output_for_node("summarize")
    assert pickle.loads(summary.read_bytes()) == expected

    # Every step is a Dagster run of its own, tagged with the Airflow run and chained.
    runs = runs_tagged(webserver.url, run_id)
    steps = [r["stepKeysToExecute"] for r in runs]
    assert sorted(steps) == sorted([step] for step in DEMO_STEPS)
    assert steps[0] == ["multiply_the_word"] and steps[-1] == ["summarize"]
    assert {r["status"] for r in runs} == {"SUCCESS"}
    root = runs[0]["runId"]
    assert runs[0]["rootRunId"] is None and runs[0]["parentRunId"] is None
    for previous, run in itertools.pairwise(runs):
        assert run["rootRunId"] == root
        assert run["parentRunId"] == previous["runId"]
    tags = {t["key"]: t["value"] for t in runs[-1]["tags"]}
    assert tags["dagster-airflow/dag_id"] == "graphql_demo"
    assert tags["dagster-airflow/task_id"] == "summarize"
    assert tags["dagster-airflow/airflow_run_id"] == result.run_id
    assert tags["dagster-airflow/try_number"] == "1"
    # The task's "Dagster run" link points at its run in the Dagster UI.
    run_url = airflow_home.xcom("graphql_demo", result.run_id, "summarize", "dagster_run_url")
    assert run_url == f"{webserver.url}/runs/{runs[-1]['runId']}"

    log = result.task_log("summarize")
    assert f"Launched Dagster run {runs[-1]['runId']}" in log
    assert f"Loaded input 'counts' from {storage_dir / run_id / 'count_letters' / 'result'}" in log
    assert "Letter counts: {'b': 2, 'a': 2, 'r': 2}" in log
    assert f"Stored output 'result' at {summary}" in log
    assert "s3cr3t-token" not in result.output


DOCS = ROOT / "docs" / "graphql.md"


def test_the_docs_definitions_bind_the_io_manager():
    from dagster_airflow.storage.io_manager import intermediate_io_manager_from_config

    code = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, str(DOCS), "exec"), namespace)
    job = namespace["defs"].resolve_job_def("demo_pipeline")
    assert job.resource_defs["io_manager"] is intermediate_io_manager_from_config


def test_the_docs_scaffold_command_works(tmp_path):
    commands = re.findall(r"```console\n\$ (.*?)\n```", DOCS.read_text(), re.S)
    assert commands
    done = run_cli(*shlex.split(commands[0])[1:], env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert '"runner": {"name": "graphql", "url": "http://dagster.internal:3000"}' in done.stdout
