"""The graphql runner against a real dagster-webserver on loopback, and through a real Airflow."""

from __future__ import annotations

import itertools
import logging
import pickle
import re
import shlex
import signal
import threading
import time
import uuid

import attrs
import httpx
import pytest
import yaml

from dagster_airflow.errors import RunnerError
from dagster_airflow.model import RUN_ID_TAG, CodeLocation, StepRequest, StorageSpec, TaskRef
from dagster_airflow.runners.graphql import GraphQLRunner
from dagster_airflow.step_result import FAILURE, NEVER_STARTED, STOPPED, SUCCESS, TIMEOUT
from dagster_airflow.testing.contracts import SLOW_OP_SLEEPING, RunnerContract
from dagster_airflow.testing.run_context import run_context_for
from dagster_airflow.testing.task_log import TaskLog
from harness.dagster_webserver import DagsterWebserver, free_port
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
    # The lifecycle's capabilities (RemoteRunner): the contract tests them where it has them.
    kills_before_start = True
    start_method = "start"
    reattaches = True
    times_out = defers = stops_earlier_tries = True

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


def slow_request(tmp_path, seconds: int = 90, task: TaskRef | None = None) -> StepRequest:
    return StepRequest(
        code_location=CodeLocation(python_file=str(DEPLOYMENT)),
        job_name="contract",
        step_key="slow",
        run_id=str(uuid.uuid4()),
        run_config={"ops": {"slow": {"config": {"seconds": seconds}}}},
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
        task=task,
    )


def ended_runs(url: str, run_id: str, timeout: float = 120.0) -> list[dict]:
    """The deployment's runs of ``run_id`` once none is left running (a canceled run goes
    through CANCELING while its worker stops); fails when one still runs after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        runs = runs_tagged(url, run_id)
        if all(run["status"] in ("SUCCESS", "FAILURE", "CANCELED") for run in runs):
            return runs
        assert time.monotonic() < deadline, f"a run is left running on the deployment: {runs}"
        time.sleep(0.5)


@pytest.fixture
def task_log():
    with TaskLog() as task_log:
        yield task_log


def test_a_kill_before_the_start_launches_no_run(webserver, tmp_path, task_log):
    runner = GraphQLRunner(url=webserver.url, poll_interval=0.5)
    request = slow_request(tmp_path)
    runner.kill()
    result = runner.run(request, run_context_for(request, task_log.logger))
    assert result.status == FAILURE
    assert result.error.kind == NEVER_STARTED, result.error
    assert runs_tagged(webserver.url, request.run_id) == []


def test_a_kill_during_the_launch_terminates_the_run_it_launched(webserver, tmp_path, task_log):
    runner = GraphQLRunner(url=webserver.url, poll_interval=0.5)
    request = slow_request(tmp_path)
    launch = runner.start
    launched = []

    def start_then_kill(*args):  # the kill arrives as launchRun answered (a STARTING run)
        handle = launch(*args)
        launched.append(handle.run_id)
        runner.kill()
        return handle

    runner.start = start_then_kill
    started = time.monotonic()
    result = runner.run(request, run_context_for(request, task_log.logger))
    assert result.status == FAILURE
    assert result.error.kind in (STOPPED, None), result.error
    assert time.monotonic() - started < 120
    [run] = ended_runs(webserver.url, request.run_id)
    assert [run["runId"]] == launched and run["status"] == "CANCELED"


def test_a_kill_from_a_signal_handler_in_the_running_thread_terminates_the_run(
    webserver, tmp_path, task_log
):
    # As Airflow's task runner does: SIGTERM's handler calls on_kill in the thread that runs
    # execute(), interrupting whatever request it was making.
    runner = GraphQLRunner(url=webserver.url, poll_interval=0.5)
    request = slow_request(tmp_path)
    previous = signal.signal(signal.SIGUSR1, lambda *_: runner.kill())
    main = threading.main_thread().ident

    def kill_once_sleeping():
        if task_log.wait_for(SLOW_OP_SLEEPING, 120):
            signal.pthread_kill(main, signal.SIGUSR1)

    killer = threading.Thread(target=kill_once_sleeping)
    killer.start()
    try:
        result = runner.run(request, run_context_for(request, task_log.logger))
    finally:
        killer.join()
        signal.signal(signal.SIGUSR1, previous)
    assert result.status == FAILURE
    assert "DagsterExecutionInterruptedError" in result.error.summary(), result.error
    [run] = ended_runs(webserver.url, request.run_id)
    assert run["status"] == "CANCELED"


def test_the_timeout_terminates_the_run_and_fails_the_step(webserver, tmp_path, task_log):
    runner = GraphQLRunner(url=webserver.url, poll_interval=0.5, timeout=3)
    request = slow_request(tmp_path)
    result = runner.run(request, run_context_for(request, task_log.logger))
    assert result.status == FAILURE
    assert result.error.kind == TIMEOUT and result.error.class_name == "StepTimeout"
    assert "the graphql runner's timeout of 3s" in result.error.message
    [run] = ended_runs(webserver.url, request.run_id)
    assert run["status"] == "CANCELED"


class Interrupted(Exception):
    """What Airflow's execution_timeout raises into execute() (AirflowTaskTimeout)."""


def test_an_interrupted_step_leaves_no_run_running(webserver, tmp_path, task_log):
    runner = GraphQLRunner(url=webserver.url, poll_interval=0.5)
    request = slow_request(tmp_path)
    raised = threading.Event()

    def interrupt(signum, frame):
        # Once, and only where the runner's own code runs or waits, as it does most of the time
        # it follows a run: not inside logging, which would swallow it (Handler.handleError),
        # nor inside an HTTP client, which may catch every Exception and retry (a swallowed
        # interrupt is no interrupt of the runner, and the test would wait for none).
        where = frame
        while where is not None and where.f_globals.get("__name__") in ("threading", "queue"):
            where = where.f_back
        module = where.f_globals.get("__name__", "") if where is not None else ""
        if not module.startswith("dagster_airflow."):
            return
        while frame is not None:
            if frame.f_globals.get("__name__", "").startswith(
                ("logging", "dagster_airflow.testing")
            ):
                return
            frame = frame.f_back
        if not raised.is_set():
            raised.set()
            raise Interrupted

    def interrupt_once_sleeping():
        if task_log.wait_for(SLOW_OP_SLEEPING, 120):
            while not raised.wait(0.2):
                signal.pthread_kill(main, signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, interrupt)
    main = threading.main_thread().ident
    killer = threading.Thread(target=interrupt_once_sleeping)
    killer.start()
    try:
        with pytest.raises(Interrupted):
            runner.run(request, run_context_for(request, task_log.logger))
    finally:
        raised.set()
        killer.join()
        signal.signal(signal.SIGUSR1, previous)
    [run] = ended_runs(webserver.url, request.run_id)
    assert run["status"] == "CANCELED"


def test_a_second_process_of_the_same_try_follows_its_run(webserver, tmp_path, task_log):
    task = TaskRef("graphql_dag", "slow", f"manual__{uuid.uuid4()}", -1, 1)
    request = slow_request(tmp_path, seconds=4, task=task)
    first = GraphQLRunner(url=webserver.url, poll_interval=0.5)
    second = GraphQLRunner(url=webserver.url, poll_interval=0.5)
    second.start = lambda *args: pytest.fail("the second runner launched the step again")
    results = []
    thread = threading.Thread(
        target=lambda: results.append(first.run(request, run_context_for(request, task_log.logger)))
    )
    thread.start()
    assert task_log.wait_for(SLOW_OP_SLEEPING, 120)
    with TaskLog() as second_log:
        followed = second.run(request, run_context_for(request, second_log.logger))
    thread.join(120)
    assert followed.status == SUCCESS, followed.error
    assert results and results[0].status == SUCCESS, results[0].error
    [run] = runs_tagged(webserver.url, request.run_id)
    assert f"Following Dagster run {run['runId']}, already STARTED for this try" in second_log.text
    assert SLOW_OP_SLEEPING in second_log.text  # its event log, from the start
    # Another try of the same task is another identity: it launches a run of its own.
    retry = attrs.evolve(request, task=attrs.evolve(task, try_number=2), attempt=2)
    third = GraphQLRunner(url=webserver.url, poll_interval=0.5)
    assert third.run(retry, run_context_for(retry, task_log.logger)).status == SUCCESS
    assert len(runs_tagged(webserver.url, request.run_id)) == 2


def test_a_new_try_terminates_the_run_an_earlier_try_left_running(webserver, tmp_path, task_log):
    # Try 1 launched its run and deferred; its task was cleared while no triggerer held its
    # trigger, so the run goes on. Try 2 terminates it, then runs the step once more.
    task = TaskRef("graphql_dag", "slow", f"manual__{uuid.uuid4()}", -1, 1)
    request = slow_request(tmp_path, seconds=600, task=task)
    GraphQLRunner(url=webserver.url, poll_interval=0.5).begin(
        request, run_context_for(request, task_log.logger)
    )
    [left] = runs_tagged(webserver.url, request.run_id)
    retry = attrs.evolve(
        request,
        run_config={"ops": {"slow": {"config": {"seconds": 0}}}},
        task=attrs.evolve(task, try_number=2),
        attempt=2,
    )
    with TaskLog() as retry_log:
        result = GraphQLRunner(url=webserver.url, poll_interval=0.5).run(
            retry, run_context_for(retry, retry_log.logger)
        )

    assert result.status == SUCCESS, result.error
    runs = {run["runId"]: run for run in ended_runs(webserver.url, request.run_id)}
    assert runs[left["runId"]]["status"] == "CANCELED"
    assert (
        f"Stopping Dagster run {left['runId']}, which an earlier try of this task started and "
        "which still runs"
    ) in retry_log.text


def test_dagster_owns_the_retries_and_airflow_does_not_retry_its_final_failure(
    webserver, tmp_path, task_log
):
    from airflow.sdk.exceptions import AirflowFailException

    from dagster_airflow.task.outcome import raise_for
    from tests.jobs.deployment import retried

    request = StepRequest(
        code_location=CodeLocation(python_file=str(DEPLOYMENT)),
        job_name="retried",
        step_key="always_fails",
        run_id=str(uuid.uuid4()),
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path)}),
    )
    result = GraphQLRunner(url=webserver.url, poll_interval=0.5).run(
        request, run_context_for(request, task_log.logger)
    )

    # One Dagster run made every attempt, as Dagster's own run of the job does.
    expected = retried.execute_in_process(raise_on_error=False)
    outcomes = ("STEP_UP_FOR_RETRY", "STEP_FAILURE", "STEP_SUCCESS")
    dagster = [e.event_type_value for e in expected.all_events if e.event_type_value in outcomes]
    assert [e.event_type for e in result.events if e.event_type in outcomes] == dagster
    assert dagster == ["STEP_UP_FOR_RETRY", "STEP_UP_FOR_RETRY", "STEP_FAILURE"]
    [run] = runs_tagged(webserver.url, request.run_id)
    assert run["status"] == "FAILURE"
    assert "always_fails fails on attempt 2" in result.error.summary()
    assert "failed and Dagster retries it in 0.1 s" in task_log.text

    # Its failure is final: the task fails at once, though Airflow has tries left (the scaffold
    # gives it retries=2 from the op's RetryPolicy), so the policy is not run again.
    assert result.status == FAILURE and not result.retryable
    with pytest.raises(AirflowFailException):
        raise_for(result, request.step_key, TryOf(try_number=1, max_tries=2), task_log.logger)


@attrs.frozen
class TryOf:
    """The two numbers of Airflow's RuntimeTaskInstance that decide whether a try is left."""

    try_number: int
    max_tries: int


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
        GraphQLRunner(url=url).run(request, run_context_for(request, logging.getLogger("t")))
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
        GraphQLRunner(url=webserver.url).run(
            request, run_context_for(request, logging.getLogger("t"))
        )
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
        GraphQLRunner(url=webserver.url).run(
            request, run_context_for(request, logging.getLogger("t"))
        )
    message = str(caught.value)
    assert message.startswith(
        f"job 'unbound' on the Dagster deployment at {webserver.url!r} rejected the run config: "
    )
    assert "must bind dagster_airflow's IO manager" in message


def test_the_io_manager_keys_outputs_by_the_run_id_tag_or_else_the_dagster_run(tmp_path):
    from dagster_airflow.testing.contract_job import contract
    from dagster_airflow.worker.io_manager import intermediate_io_manager_from_config

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


@pytest.mark.airflow
def test_a_step_dagster_retried_on_the_deployment_is_one_airflow_try(
    airflow_home, webserver, tmp_path
):
    from tests.e2e.test_e2e_retries import airflow_tries

    text = scaffold(
        "retried",
        "-f",
        str(DEPLOYMENT),
        "--dag-id",
        "graphql_retried",
        "--runner",
        "graphql",
        "--runner-option",
        f"url={webserver.url}",
        "--runner-option",
        "poll_interval=0.5",
        "--storage",
        "filesystem",
        "--storage-option",
        f"base_dir={tmp_path / 'storage'}",
    )
    assert "retries=2" in text  # the op's RetryPolicy, as the scaffold writes it for any runner
    airflow_home.install(text, "graphql_retried.py")

    result = airflow_home.dags_test("graphql_retried")

    assert result.states == {"always_fails": "failed"}
    # Dagster's run made the three attempts; Airflow did not run the policy again.
    assert airflow_tries(airflow_home, result.dag_id, result.run_id) == {"always_fails": 1}
    from dagster_airflow.model import dagster_run_id

    [run] = runs_tagged(webserver.url, dagster_run_id("graphql_retried", result.run_id))
    assert run["status"] == "FAILURE"
    log = result.task_log("always_fails")
    assert log.count("failed and Dagster retries it in 0.1 s") == 2
    assert "always_fails fails on attempt 2" in log


DOCS = ROOT / "docs" / "graphql.md"


def test_the_docs_definitions_bind_the_io_manager():
    from dagster_airflow.worker.io_manager import intermediate_io_manager_from_config

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
