"""GraphQL runner: each step launched as a run on a Dagster deployment (Airflow side).

Plain HTTP to dagster-webserver's GraphQL API, no Dagster import, on the lifecycle of
runners/lifecycle.py: ``launchRun`` with the one step selected (or, for the same Airflow try, the
run already launched, found by its tags), then the run's status and its event log into the
Airflow task log, ``terminateRun`` on a kill or a timeout. Every step is a Dagster run of its
own, visible in the Dagster UI; the steps of one Airflow run are chained as re-executions of one
another (``rootRunId`` / ``parentRunId``) and share the Airflow-derived run id through the tag
``dagster-airflow/dagster_run_id``, by which the deployment's IO manager
(``dagster_airflow.worker.io_manager.intermediate_io_manager_from_config``) keys intermediates.

Retries are the deployment's: its run retries the step as Dagster does (RetryPolicy,
RetryRequested), so a step failure the run reports is final and Airflow does not retry it again
(``final_outcome``; docs/graphql.md).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from dagster_airflow.connection import Connection
from dagster_airflow.errors import RunnerError
from dagster_airflow.model import RUN_ID_TAG, StepRequest, try_tag
from dagster_airflow.options import Configured, OptionFields
from dagster_airflow.plugins import hookimpl
from dagster_airflow.runners.base import RunContext
from dagster_airflow.runners.lifecycle import LOST_ERROR, RemoteRunner, RunState
from dagster_airflow.step_result import (
    EXIT_NO_RETRY,
    FAILURE,
    LOST,
    UP_FOR_RETRY,
    StepError,
    StepEvent,
    StepResult,
)

DEFAULT_URL = "http://localhost:3000"
DEFAULT_TOKEN_HEADER = "Dagster-Cloud-Api-Token"
HTTP_TIMEOUT = 30.0  # seconds for one GraphQL request
POLL_FAILURES_TOLERATED = 60.0  # seconds the webserver may be unreachable while a run goes on
KILL_WAIT = 30.0  # seconds cleanup keeps asking to terminate a run that is still starting
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
# Not running yet: terminateRun refuses such a run (Dagster cancels only QUEUED and STARTED).
STARTING = {"QUEUED", "NOT_STARTED", "MANAGED", "STARTING"}

logger = logging.getLogger(__name__)

# A Python error and three levels of its causes: where an op's own exception sits.
_ERROR = "{ message className stack cause { message className stack cause { message className "
_ERROR += "stack cause { message className stack } } } }"

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidStepError { invalidStepKey }
    ... on Error { message }
  }
}
"""

STATUS = """
query Status($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status } ... on Error { message } }
}
"""

EVENTS = """
query Events($runId: ID!, $cursor: String) {
  logsForRun(runId: $runId, afterCursor: $cursor) {
    __typename
    ... on EventConnection {
      cursor
      hasMore
      events {
        __typename
        ... on MessageEvent { message timestamp level stepKey eventType }
        ... on ErrorEvent { error PYTHON_ERROR }
        ... on HandledOutputEvent {
          outputName
          metadataEntries { label ... on PathMetadataEntry { path } }
        }
        ... on LoadedInputEvent { inputName upstreamOutputName upstreamStepKey }
        ... on ExecutionStepUpForRetryEvent { secondsToWait }
      }
    }
    ... on Error { message }
  }
}
""".replace("PYTHON_ERROR", _ERROR)

# The newest run with these tags: of this Airflow try (reattach), of this Airflow run (lineage).
NEWEST_RUN = """
query Newest($tags: [ExecutionTag!]) {
  runsOrError(filter: {tags: $tags}, limit: 1) {
    __typename ... on Runs { results { runId rootRunId status } } ... on Error { message }
  }
}
"""

# The runs of one task instance, every try, that have not ended (nor are being canceled).
UNFINISHED_RUNS = """
query Unfinished($tags: [ExecutionTag!]) {
  runsOrError(
    filter: {tags: $tags, statuses: [QUEUED, NOT_STARTED, MANAGED, STARTING, STARTED]}
  ) {
    __typename ... on Runs { results { runId tags { key value } } } ... on Error { message }
  }
}
"""

REPOSITORIES = """
query Repositories {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection { nodes { name location { name } jobs { name } } }
    ... on Error { message }
  }
}
"""

TERMINATE = """
mutation Terminate($runId: String!) {
  terminateRun(runId: $runId) {
    __typename ... on TerminateRunFailure { message run { status } } ... on Error { message }
  }
}
"""


def _error(data: Mapping[str, Any] | None) -> StepError | None:
    """A StepError from GraphQL's PythonError, causes included."""
    if not data:
        return None
    class_name = data.get("className") or "Error"
    # Dagster's message repeats the class (`dagster._core.errors.X: text`): keep the text.
    message = re.sub(rf"^[\w.]*{re.escape(class_name)}(: |$)", "", (data["message"]).strip())
    return StepError(
        class_name=class_name,
        message=message,
        stack="".join(data.get("stack") or ()),
        cause=_error(data.get("cause")),
    )


def _timestamp(value: str | None) -> float:
    try:
        return float(value) / 1000.0 if value else 0.0
    except ValueError:
        return 0.0


def final_outcome(result: StepResult, stopped: str | None) -> StepResult:
    """The task's outcome of a step its Dagster run retried within itself.

    The run applied Dagster's retry decision (each attempt, its delay, its retry_number): a
    failure it reports is final, and Airflow's retries (the scaffold writes them from the op's
    RetryPolicy) must not run the whole policy again. A run that ended between two attempts
    (canceled, lost) was not Dagster's decision: its try failed, stopped or lost, not up for
    another Airflow retry of Dagster's.
    """
    if result.status == UP_FOR_RETRY:
        error = StepError(
            LOST_ERROR,
            "the Dagster run ended before Dagster's next attempt of the step",
            cause=result.error,
            kind=stopped or LOST,
        )
        return attrs.evolve(result, status=FAILURE, error=error, seconds_to_wait=None)
    if result.status == FAILURE and stopped is None and result.error and not result.error.kind:
        return attrs.evolve(result, exit_code=EXIT_NO_RETRY)
    return result


_field = OptionFields("the graphql runner")


@attrs.frozen
class GraphQLOptions:
    url: str = _field.url(
        "url",
        f"set it to the Dagster webserver's address, such as {DEFAULT_URL!r}",
        example=DEFAULT_URL,
    )
    location: str | None = _field.string("location", default=None, example="my_location")
    repository: str | None = _field.string("repository", default=None, example="__repository__")
    dagster_conn_id: str | None = _field.string(
        "dagster_conn_id", default=None, example="dagster_default"
    )
    poll_interval: float = _field.number("poll_interval", default=1.0, example="1")
    timeout: float | None = _field.number("timeout", default=None, example="3600")


@attrs.define
class _DagsterRun:
    """A Dagster run this runner follows: where its event log was read to, what it said."""

    run_id: str
    request: StepRequest
    context: RunContext
    cursor: str | None = None
    finished: bool = False  # a poll saw it end: the next read of its event log is the last
    ended: bool = False  # its event log was read to the end after it finished
    gone: bool = False  # the deployment no longer has it
    terminating: bool = False  # asked to stop, not accepted yet (a run still starting)
    errors: list[StepError] = attrs.field(factory=list)  # the run's own errors (not the step's)


class GraphQLRunner(Configured, RemoteRunner):
    """Launches each step as a Dagster run through dagster-webserver's GraphQL API.

    :param url: the webserver (``/graphql`` is appended unless it ends with it).
    :param location: the code location holding the job (found by the job's name when unset).
    :param repository: the repository in that location (idem).
    :param dagster_conn_id: an Airflow connection whose password is an API token and whose extra
        may hold ``headers`` and ``token_header``.
    :param poll_interval: the longest pause, in seconds, between two polls of the run.
    :param timeout: seconds a step's run may take before it is terminated and the task fails
        (None: as long as Airflow lets it).
    """

    name = "graphql"
    options_class = GraphQLOptions
    run_noun = "Dagster run"
    # Its steps run in the deployment's run workers, which read their own environment.
    takes_environment = False

    def configure(self) -> None:
        self.url = self.options.url.rstrip("/")
        self.endpoint = self.url if self.url.endswith("/graphql") else f"{self.url}/graphql"
        self.ui_url = self.endpoint.removesuffix("/graphql")  # where a run is shown: /runs/<id>
        self.max_poll = self.options.poll_interval
        self.first_poll = min(0.25, self.options.poll_interval)
        self.timeout = self.options.timeout
        self._headers: dict[str, str] = {}
        self._client = None

    @classmethod
    def scaffold_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        return {"url": DEFAULT_URL, **options}

    # -- HTTP -------------------------------------------------------------------------------

    def graphql(
        self, document: str, variables: Mapping[str, Any] | None = None, own_client: bool = False
    ) -> dict:
        """The ``data`` of a GraphQL answer; RunnerError for anything but a clean answer.

        ``own_client``: use a connection of its own, for stop(), which may run in a signal
        handler that interrupted a request on the shared client.
        """
        import httpx

        started = time.monotonic()
        body = {"query": document, "variables": dict(variables or {})}
        try:
            if own_client:
                with httpx.Client(timeout=HTTP_TIMEOUT, headers=self._headers) as client:
                    response = client.post(self.endpoint, json=body)
            else:
                if self._client is None:
                    self._client = httpx.Client(timeout=HTTP_TIMEOUT, headers=self._headers)
                response = self._client.post(self.endpoint, json=body)
        except httpx.HTTPError as exc:
            raise RunnerError(
                f"cannot reach the Dagster webserver at {self.url!r} ({type(exc).__name__}: "
                f"{exc}); check the graphql runner's 'url' option and that dagster-webserver "
                "is running there."
            ) from None
        logger.debug(
            "GraphQL %s: HTTP %s in %.2fs",
            document.split("(")[0].split("{")[0].strip(),
            response.status_code,
            time.monotonic() - started,
        )
        if response.status_code in (401, 403):
            raise RunnerError(
                f"the Dagster webserver at {self.url!r} refused the request "
                f"(HTTP {response.status_code}); give the graphql runner a 'dagster_conn_id' "
                "whose connection holds a valid token."
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or ("data" not in body and "errors" not in body):
            raise RunnerError(
                f"{self.endpoint!r} did not answer as a Dagster GraphQL API (HTTP "
                f"{response.status_code}: {response.text[:200]!r}); check the graphql "
                "runner's 'url' option."
            )
        if body.get("errors"):
            messages = "; ".join(str(e.get("message", e)) for e in body["errors"])
            raise RunnerError(f"the Dagster webserver at {self.url!r} answered: {messages}")
        return body["data"]

    def _patient(self, document: str, variables: Mapping[str, Any]) -> dict:
        """``graphql()`` while following a run: a webserver briefly away (a restart, a deploy)
        is waited for, up to POLL_FAILURES_TOLERATED seconds."""
        failing_since = None
        while True:
            try:
                return self.graphql(document, variables)
            except RunnerError as exc:
                now = time.monotonic()
                failing_since = failing_since or now
                if now - failing_since > POLL_FAILURES_TOLERATED:
                    raise
                logger.warning(
                    "Polling Dagster run %s failed, retrying: %s", variables["runId"], exc
                )
                time.sleep(max(self.max_poll, 2.0))

    def _connection_headers(self, context: RunContext) -> dict[str, str]:
        """Headers from the Airflow connection ``dagster_conn_id``: its extra's ``headers``, and
        its password as a token in ``token_header`` (default Dagster-Cloud-Api-Token)."""
        if not self.dagster_conn_id:
            return {}
        conn = Connection.parse(context.connection(self.dagster_conn_id), self.dagster_conn_id)
        if conn is None:
            raise RunnerError(
                f"the graphql runner's dagster_conn_id {self.dagster_conn_id!r} is not an "
                "Airflow connection; create it or remove the option."
            )
        extra = conn.extra
        headers = {str(k): str(v) for k, v in (extra.get("headers") or {}).items()}
        if conn.password:
            context.mask(conn.password)
            headers[str(extra.get("token_header") or DEFAULT_TOKEN_HEADER)] = conn.password
        return headers

    # -- the job on the deployment --------------------------------------------------------

    def _selector(self, job_name: str) -> dict[str, str]:
        if self.location and self.repository:
            return self._selector_of(self.location, self.repository, job_name)
        data = self.graphql(REPOSITORIES)["repositoriesOrError"]
        if data["__typename"] != "RepositoryConnection":
            raise RunnerError(
                f"the Dagster webserver at {self.url!r} cannot list its repositories: "
                f"{data.get('message')}"
            )
        found = [
            (repo["location"]["name"], repo["name"])
            for repo in data["nodes"]
            if any(job["name"] == job_name for job in repo["jobs"])
            and self.location in (None, repo["location"]["name"])
            and self.repository in (None, repo["name"])
        ]
        if len(found) == 1:
            return self._selector_of(*found[0], job_name)
        where = ", ".join(f"{loc}/{repo}" for loc, repo in found)
        if found:
            raise RunnerError(
                f"job {job_name!r} is in several repositories of the Dagster deployment at "
                f"{self.url!r} ({where}); set the graphql runner's 'location' and 'repository'."
            )
        jobs = sorted(
            {
                f"{repo['location']['name']}/{repo['name']}/{job['name']}"
                for repo in data["nodes"]
                for job in repo["jobs"]
                if not job["name"].startswith("__")
            }
        )
        raise RunnerError(
            f"job {job_name!r} is not on the Dagster deployment at {self.url!r}"
            + (f" (location {self.location!r})" if self.location else "")
            + f"; its jobs are: {', '.join(jobs) or 'none'}; deploy the job or fix the DAG."
        )

    @staticmethod
    def _selector_of(location: str, repository: str, job_name: str) -> dict[str, str]:
        return {
            "repositoryLocationName": location,
            "repositoryName": repository,
            "jobName": job_name,
        }

    def _newest(self, tags: Mapping[str, str]) -> dict | None:
        data = self.graphql(NEWEST_RUN, {"tags": [{"key": k, "value": v} for k, v in tags.items()]})
        runs = data["runsOrError"]
        if runs["__typename"] != "Runs" or not runs["results"]:
            return None
        return runs["results"][0]

    def _lineage(self, run_id: str) -> dict[str, str]:
        """rootRunId and parentRunId: the newest Dagster run of the same Airflow run is the
        parent, and the root is its root; the first step's run starts the group."""
        parent = self._newest({RUN_ID_TAG: run_id})
        if parent is None:
            return {}
        return {"parentRunId": parent["runId"], "rootRunId": parent["rootRunId"] or parent["runId"]}

    @staticmethod
    def run_config(request: StepRequest) -> dict[str, Any]:
        """The request's run config with the storage as the IO manager's configuration."""
        resources = dict(request.run_config.get("resources") or {})
        io_manager = dict(resources.get("io_manager") or {})
        io_manager["config"] = {
            **(io_manager.get("config") or {}),
            "storage": request.storage.to_dict(),
        }
        return {**request.run_config, "resources": {**resources, "io_manager": io_manager}}

    def _launch(self, request: StepRequest) -> str:
        params = {
            "selector": self._selector(request.job_name),
            "runConfigData": self.run_config(request),
            "stepKeys": [request.step_key],
            "executionMetadata": {
                "tags": [{"key": k, "value": v} for k, v in request.tags().items()],
                **self._lineage(request.run_id),
            },
        }
        answer = self.graphql(LAUNCH, {"params": params})["launchRun"]
        kind = answer["__typename"]
        if kind == "LaunchRunSuccess":
            return answer["run"]["runId"]
        where = f"job {request.job_name!r} on the Dagster deployment at {self.url!r}"
        if kind == "RunConfigValidationInvalid":
            problems = "; ".join(" ".join(e["message"].split()) for e in answer["errors"])
            raise RunnerError(
                f"{where} rejected the run config: {problems}; the job must bind "
                "dagster_airflow's IO manager (intermediate_io_manager_from_config) as "
                "'io_manager', unconfigured, and the DAG's run_config must fit the deployed job."
            )
        if kind == "InvalidStepError":
            raise RunnerError(
                f"{where} has no step {answer['invalidStepKey']!r}; the DAG file is out of date "
                "with the deployed job: scaffold it again."
            )
        raise RunnerError(f"{where} could not launch step {request.step_key!r}: {answer}")

    # -- one step (the lifecycle's methods) -------------------------------------------------

    def outcome(self, result: StepResult, stopped: str | None) -> StepResult:
        """The outcome as Dagster's retries in the run decided it."""
        return final_outcome(result, stopped)

    def prepare(self, request: StepRequest, context: RunContext) -> None:
        if context.secret_env:
            context.log.info(
                "Storage credentials from Airflow connections are not sent to the Dagster "
                "deployment: its run workers use their own access to storage %r.",
                request.storage.name,
            )
        self._headers = self._connection_headers(context)
        if self._client is not None:
            self._client.close()
            self._client = None

    def find(self, request: StepRequest, context: RunContext) -> _DagsterRun | None:
        """The run launched for this Airflow try, in any state, found by its identity's tags:
        the deployment keeps every run and filters them by tags, so a second process of the
        same try follows the run (from the start of its event log) instead of a second one."""
        if request.task is None:
            return None
        found = self._newest(request.tags())
        if found is None:
            return None
        context.log.info(
            "Following Dagster run %s, already %s for this try: %s/runs/%s",
            found["runId"],
            found["status"],
            self.ui_url,
            found["runId"],
        )
        context.push_link(f"{self.ui_url}/runs/{found['runId']}")
        return _DagsterRun(found["runId"], request, context)

    def earlier_runs(self, request: StepRequest, context: RunContext) -> list[_DagsterRun]:
        """The Dagster runs of this task's earlier tries that have not ended, by their tags."""
        tags = [{"key": k, "value": v} for k, v in request.task.tags_of_every_try().items()]
        runs = self.graphql(UNFINISHED_RUNS, {"tags": tags})["runsOrError"]
        if runs["__typename"] != "Runs":
            return []
        tried = try_tag()
        return [
            _DagsterRun(run["runId"], request, context)
            for run in runs["results"]
            if int({t["key"]: t["value"] for t in run["tags"]}.get(tried, "0"))
            < request.task.try_number
        ]

    def start(self, request: StepRequest, context: RunContext) -> _DagsterRun:
        run_id = self._launch(request)
        context.log.info("Launched Dagster run %s: %s/runs/%s", run_id, self.ui_url, run_id)
        context.push_link(f"{self.ui_url}/runs/{run_id}")  # the task's "Dagster run" link
        return _DagsterRun(run_id, request, context)

    def describe(self, handle: _DagsterRun) -> str:
        return f"Dagster run {handle.run_id}"

    def handle_to_data(self, handle: _DagsterRun) -> str:
        return handle.run_id

    def handle_from_data(self, data: str, request: StepRequest, context: RunContext) -> _DagsterRun:
        """The Dagster run of a deferred step, by its id; its event log is read from its start."""
        return _DagsterRun(data, request, context)

    def state(self, handle: _DagsterRun) -> RunState:
        data = self._patient(STATUS, {"runId": handle.run_id})["runOrError"]
        if data["__typename"] != "Run":  # deleted from the deployment while followed
            handle.gone = handle.finished = handle.ended = True
            return RunState("gone", finished=True, ran=False, detail=data.get("message"))
        status = data["status"]
        handle.finished = status in TERMINAL
        if handle.terminating and not handle.finished:
            self._terminate(handle)  # a run that was still starting: ask again
        return RunState(status, finished=handle.finished, starting=status in STARTING)

    def read_output(self, handle: _DagsterRun, wait: float, final: bool = False) -> Iterable[str]:
        """The run's new events (its event log by cursor), as the worker's event lines."""
        if handle.gone:
            return []
        finished, lines = handle.finished, []
        while True:
            variables = {"runId": handle.run_id, "cursor": handle.cursor}
            events = self._patient(EVENTS, variables)["logsForRun"]
            if events["__typename"] != "EventConnection":
                raise RunnerError(
                    f"cannot read the event log of Dagster run {handle.run_id} at {self.url!r}: "
                    f"{events.get('message')}"
                )
            for event in events["events"]:
                step_event = self._step_event(event, handle.request, handle.context.storage)
                if step_event.error and step_event.event_type != "STEP_FAILURE":
                    handle.errors.append(step_event.error)
                lines.append(step_event.to_json())
            handle.cursor = events["cursor"]
            if not events["hasMore"]:
                break
        # Its status comes from its last event: read after the run ended, the log is whole.
        handle.ended = finished
        return lines

    def output_ended(self, handle: _DagsterRun, step_log) -> bool:
        return handle.ended

    def never_reported(
        self, handle: _DagsterRun, state: RunState, error: StepError | None
    ) -> StepError:
        what = "was deleted from the deployment" if handle.gone else f"ended {state.status}"
        return StepError(
            LOST_ERROR,
            f"Dagster run {handle.run_id} {what} before its step finished; see the run at "
            f"{self.ui_url}/runs/{handle.run_id}",
            cause=handle.errors[-1] if handle.errors else None,
        )

    def stop(self, handle: _DagsterRun, reason: str) -> None:
        handle.terminating = True
        self._terminate(handle)

    def cleanup(self, handle: _DagsterRun, result: StepResult | None, stopped: str | None) -> None:
        """A run asked to stop while it was still starting, and no longer followed (``run`` was
        interrupted): ask until the deployment accepts, so that nothing is left running."""
        deadline = time.monotonic() + KILL_WAIT
        while handle.terminating and not self._terminate(handle):
            if time.monotonic() > deadline:
                handle.context.log.warning(
                    "Dagster run %s could not be terminated in %ss: stop it in the Dagster UI",
                    handle.run_id,
                    KILL_WAIT,
                )
                return
            time.sleep(self.first_poll)

    def _terminate(self, handle: _DagsterRun) -> bool:
        """Ask the deployment to terminate the run; whether there is nothing more to ask.

        A run still starting cannot be terminated yet: ``state`` and ``cleanup`` ask again.
        """
        try:
            variables = {"runId": handle.run_id}
            answer = self.graphql(TERMINATE, variables, own_client=True)["terminateRun"]
        except RunnerError as exc:
            logger.warning("Could not terminate Dagster run %s: %s", handle.run_id, exc)
            return False
        kind = answer["__typename"]
        if kind == "TerminateRunFailure":
            status = answer["run"]["status"]
            if status in STARTING:
                logger.info("Dagster run %s is %s, not terminated yet", handle.run_id, status)
                return False
        elif kind != "TerminateRunSuccess":  # RunNotFound, Unauthorized: asking again won't help
            logger.warning(
                "Could not terminate Dagster run %s: %s", handle.run_id, answer.get("message")
            )
        handle.terminating = False
        return True

    @staticmethod
    def _step_event(event: Mapping[str, Any], request: StepRequest, storage) -> StepEvent:
        kind = event["__typename"]
        fields: dict[str, Any] = {}
        event_type = "LOG" if kind == "LogMessageEvent" else event.get("eventType") or kind
        if kind == "HandledOutputEvent":
            paths = [e.get("path") for e in event.get("metadataEntries") or () if e.get("path")]
            fields = {"output_name": event["outputName"], "uri": paths[0] if paths else None}
        elif kind == "LoadedInputEvent":
            uri = None
            if storage is not None and event.get("upstreamStepKey"):
                key = storage.key(
                    request.run_id, event["upstreamStepKey"], event["upstreamOutputName"]
                )
                uri = storage.uri(key)
            fields = {"input_name": event["inputName"], "uri": uri}
        elif kind == "ExecutionStepUpForRetryEvent":
            fields = {"seconds_to_wait": event.get("secondsToWait")}
        return StepEvent(
            event_type,
            event.get("message") or "",
            step_key=event.get("stepKey"),
            level=event.get("level") or "INFO",
            timestamp=_timestamp(event.get("timestamp")),
            error=_error(event.get("error")),
            **fields,
        )


@hookimpl
def dagster_airflow_register_runners(register):
    register(GraphQLRunner)
