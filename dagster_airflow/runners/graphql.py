"""GraphQL runner: each step launched as a run on a Dagster deployment (Airflow side).

Plain HTTP to dagster-webserver's GraphQL API, no Dagster import: ``launchRun`` with the one step
selected, then poll the run's status and copy its event log into the Airflow task log. Every step
is a Dagster run of its own, visible in the Dagster UI; the steps of one Airflow run are chained
as re-executions of one another (``rootRunId`` / ``parentRunId``) and share the Airflow-derived
run id through the tag ``dagster-airflow/dagster_run_id``, by which the deployment's IO manager
(``dagster_airflow.storage.io_manager.intermediate_io_manager_from_config``) keys intermediates.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any

import attrs

from dagster_airflow.errors import RunnerError
from dagster_airflow.model import (
    FAILURE,
    RUN_ID_TAG,
    TAG_PREFIX,
    StepError,
    StepEvent,
    StepRequest,
    StepResult,
)
from dagster_airflow.options import OptionFields
from dagster_airflow.plugins import hookimpl
from dagster_airflow.runners.base import RunContext, StepRunner, run_context
from dagster_airflow.step_log import StepLog

DEFAULT_URL = "http://localhost:3000"
DEFAULT_TOKEN_HEADER = "Dagster-Cloud-Api-Token"
HTTP_TIMEOUT = 30.0  # seconds for one GraphQL request
POLL_FAILURES_TOLERATED = 60.0  # seconds the webserver may be unreachable while a run goes on
KILL_WAIT = 30.0  # seconds kill() keeps asking to terminate a run that is still starting
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

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

POLL = """
query Poll($runId: ID!, $cursor: String) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status }
    ... on Error { message }
  }
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
      }
    }
    ... on Error { message }
  }
}
""".replace("PYTHON_ERROR", _ERROR)

PREVIOUS_RUNS = """
query Previous($tags: [ExecutionTag!]) {
  runsOrError(filter: {tags: $tags}, limit: 1) {
    __typename
    ... on Runs { results { runId rootRunId } }
    ... on Error { message }
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
    __typename
    ... on TerminateRunFailure { message run { status } }
    ... on Error { message }
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


_field = OptionFields("the graphql runner")


def _url_fix(url: str) -> str | None:
    if re.match(r"https?://[^/\s]+", url):
        return None
    return f"set it to the Dagster webserver's address, such as {DEFAULT_URL!r}"


@attrs.frozen
class GraphQLOptions:
    url: str = _field.string(
        "url", example=DEFAULT_URL, check=_url_fix, expected="an http(s) address"
    )
    location: str | None = _field.string("location", default=None, example="my_location")
    repository: str | None = _field.string("repository", default=None, example="__repository__")
    dagster_conn_id: str | None = _field.string(
        "dagster_conn_id", default=None, example="dagster_default"
    )
    poll_interval: float = _field.number("poll_interval", default=1.0, example="1")
    timeout: float | None = _field.number("timeout", default=None, example="3600")


class GraphQLRunner(StepRunner):
    """Launches each step as a Dagster run through dagster-webserver's GraphQL API.

    Options: ``url`` (the webserver), ``location`` and ``repository`` (the code location and
    repository holding the job; found by the job's name when not set), ``dagster_conn_id`` (an
    Airflow connection whose password is an API token and whose extra may hold ``headers`` and
    ``token_header``), ``poll_interval`` (seconds between polls), ``timeout`` (seconds a step's
    run may take before the task terminates it and fails; None: as long as Airflow lets it).
    """

    name = "graphql"

    def __init__(
        self,
        url: str,
        location: str | None = None,
        repository: str | None = None,
        dagster_conn_id: str | None = None,
        poll_interval: float = 1.0,
        timeout: float | None = None,
    ) -> None:
        o = GraphQLOptions(url, location, repository, dagster_conn_id, poll_interval, timeout)
        self.url = o.url.rstrip("/")
        self.endpoint = self.url if self.url.endswith("/graphql") else f"{self.url}/graphql"
        self.ui_url = self.endpoint.removesuffix("/graphql")  # where a run is shown: /runs/<id>
        self.location = o.location
        self.repository = o.repository
        self.dagster_conn_id = o.dagster_conn_id
        self.poll_interval = o.poll_interval
        self.timeout = o.timeout
        self._headers: dict[str, str] = {}
        self._client = None
        self._run_id: str | None = None
        self._killed = False
        self._terminated = False

    @classmethod
    def scaffold_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        return {"url": DEFAULT_URL, **options}

    # -- HTTP -------------------------------------------------------------------------------

    def _http(self):
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=HTTP_TIMEOUT, headers=self._headers)
        return self._client

    def graphql(
        self, document: str, variables: Mapping[str, Any] | None = None, own_client: bool = False
    ) -> dict:
        """The ``data`` of a GraphQL answer; RunnerError for anything but a clean answer.

        ``own_client``: use a connection of its own, for kill(), which Airflow may call from a
        signal handler that interrupted a request on the shared client.
        """
        import httpx

        started = time.monotonic()
        body = {"query": document, "variables": dict(variables or {})}
        try:
            if own_client:
                with httpx.Client(timeout=HTTP_TIMEOUT, headers=self._headers) as client:
                    response = client.post(self.endpoint, json=body)
            else:
                response = self._http().post(self.endpoint, json=body)
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

    def _connection_headers(self, context: RunContext) -> dict[str, str]:
        """Headers from the Airflow connection ``dagster_conn_id``: its extra's ``headers``, and
        its password as a token in ``token_header`` (default Dagster-Cloud-Api-Token)."""
        if not self.dagster_conn_id:
            return {}
        conn = context.connection(self.dagster_conn_id)
        if conn is None:
            raise RunnerError(
                f"the graphql runner's dagster_conn_id {self.dagster_conn_id!r} is not an "
                "Airflow connection; create it or remove the option."
            )
        extra = conn.get("extra") or {}
        headers = {str(k): str(v) for k, v in (extra.get("headers") or {}).items()}
        if conn.get("password"):
            context.mask(conn["password"])
            headers[str(extra.get("token_header") or DEFAULT_TOKEN_HEADER)] = conn["password"]
        return headers

    # -- the run ------------------------------------------------------------------------------

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

    @staticmethod
    def tags(request: StepRequest) -> dict[str, str]:
        """The one tag vocabulary (StepRequest.tags), and the attempt."""
        return request.tags() | {f"{TAG_PREFIX}/attempt": str(request.attempt)}

    def _lineage(self, run_id: str) -> dict[str, str]:
        """rootRunId and parentRunId: the newest Dagster run of the same Airflow run is the
        parent, and the root is its root; the first step's run starts the group."""
        data = self.graphql(PREVIOUS_RUNS, {"tags": [{"key": RUN_ID_TAG, "value": run_id}]})
        runs = data["runsOrError"]
        if runs["__typename"] != "Runs" or not runs["results"]:
            return {}
        parent = runs["results"][0]
        return {"parentRunId": parent["runId"], "rootRunId": parent["rootRunId"] or parent["runId"]}

    @staticmethod
    def run_config(request: StepRequest) -> dict[str, Any]:
        """The request's run config with the storage as the IO manager's configuration."""
        run_config = dict(request.run_config)
        resources = dict(run_config.get("resources") or {})
        io_manager = dict(resources.get("io_manager") or {})
        io_manager["config"] = {
            **(io_manager.get("config") or {}),
            "storage": request.storage.to_dict(),
        }
        resources["io_manager"] = io_manager
        run_config["resources"] = resources
        return run_config

    def _launch(self, request: StepRequest) -> str:
        params = {
            "selector": self._selector(request.job_name),
            "runConfigData": self.run_config(request),
            "stepKeys": [request.step_key],
            "executionMetadata": {
                "tags": [{"key": k, "value": v} for k, v in self.tags(request).items()],
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

    def run(
        self,
        request: StepRequest,
        context: RunContext | Mapping[str, str],
        log: logging.Logger | None = None,
    ) -> StepResult:
        context = run_context(request, context, log)
        log = context.log
        if context.secret_env:
            log.info(
                "Storage credentials from Airflow connections are not sent to the Dagster "
                "deployment: its run workers use their own access to storage %r.",
                request.storage.name,
            )
        self._headers = self._connection_headers(context)
        if self._killed:
            return self._stopped("the task was stopped before its Dagster run was launched")
        run_id = self._launch(request)
        # Set before reading _killed (kill() sets _killed before reading _run_id): whichever
        # comes second sees the other, so a kill during the launch still terminates the run.
        self._run_id = run_id
        log.info("Launched Dagster run %s: %s/runs/%s", run_id, self.ui_url, run_id)
        context.push_link(f"{self.ui_url}/runs/{run_id}")  # the task's "Dagster run" link
        if self._killed:
            self.kill()
        return self._follow(request, run_id, log, context.storage)

    def _poll(self, run_id: str, cursor: str | None) -> dict:
        """One poll; a webserver briefly away (a restart, a deploy) is waited for."""
        failing_since = None
        while True:
            try:
                return self.graphql(POLL, {"runId": run_id, "cursor": cursor})
            except RunnerError as exc:
                now = time.monotonic()
                failing_since = failing_since or now
                if now - failing_since > POLL_FAILURES_TOLERATED:
                    raise
                logger.warning("Polling Dagster run %s failed, retrying: %s", run_id, exc)
                time.sleep(max(self.poll_interval, 2.0))

    def _follow(
        self, request: StepRequest, run_id: str, log: logging.Logger, storage
    ) -> StepResult:
        step_log = StepLog(log)
        cursor: str | None = None
        deadline = time.monotonic() + self.timeout if self.timeout is not None else None
        timed_out = False
        run_errors: list[StepError] = []
        while True:
            data = self._poll(run_id, cursor)
            status = data["runOrError"].get("status")
            while True:  # drain the event log so far
                events = data["logsForRun"]
                if events["__typename"] != "EventConnection":
                    raise RunnerError(
                        f"cannot read the event log of Dagster run {run_id} at {self.url!r}: "
                        f"{events.get('message')}"
                    )
                for event in events["events"]:
                    step_event = self._step_event(event, request, storage)
                    step_log.feed(step_event.to_json())
                    if step_event.error and step_event.event_type != "STEP_FAILURE":
                        run_errors.append(step_event.error)
                cursor = events["cursor"]
                if not events["hasMore"]:
                    break
                data = self._poll(run_id, cursor)
            if data["runOrError"]["__typename"] != "Run":
                raise RunnerError(
                    f"Dagster run {run_id} is gone from {self.url!r}: "
                    f"{data['runOrError'].get('message')}"
                )
            if status in TERMINAL:
                break
            if self._killed and not self._terminated and status != "CANCELING":
                self._terminate(run_id)
            if deadline is not None and time.monotonic() > deadline and not timed_out:
                timed_out = True
                log.error("Dagster run %s took over %ss: terminating it", run_id, self.timeout)
                self.kill()
            time.sleep(self.poll_interval)
        log.info("Dagster run %s ended: %s", run_id, status)
        return self._result(step_log, run_id, status, run_errors, timed_out)

    def _result(
        self,
        step_log: StepLog,
        run_id: str,
        status: str,
        run_errors: list[StepError],
        timed_out: bool,
    ) -> StepResult:
        kinds = {e.event_type for e in step_log.events}
        if timed_out:
            error = StepError(
                "RunnerTimeout",
                f"Dagster run {run_id} took over the graphql runner's timeout of "
                f"{self.timeout}s and was terminated",
                cause=step_log.result(0).error,
            )
        elif status == "SUCCESS" or "STEP_FAILURE" in kinds:
            return step_log.result(0)
        elif status == "CANCELED":
            error = StepError("DagsterRunCanceled", f"Dagster run {run_id} was canceled")
        else:
            error = StepError(
                "DagsterRunFailed",
                f"Dagster run {run_id} ended {status} before its step finished; see the run at "
                f"{self.ui_url}/runs/{run_id}",
                cause=run_errors[-1] if run_errors else None,
            )
        return StepResult(FAILURE, None, {}, error, tuple(step_log.events))

    def _stopped(self, why: str) -> StepResult:
        return StepResult(FAILURE, None, {}, StepError("DagsterRunCanceled", why))

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
        error = _error(event.get("error"))
        return StepEvent(
            event_type,
            event.get("message") or "",
            step_key=event.get("stepKey"),
            level=event.get("level") or "INFO",
            timestamp=_timestamp(event.get("timestamp")),
            error=error,
            **fields,
        )

    def kill(self) -> None:
        # No lock: Airflow calls this from a signal handler that may have interrupted run().
        self._killed = True
        run_id = self._run_id
        if run_id is None:
            return
        logger.info("Terminating Dagster run %s", run_id)
        deadline = time.monotonic() + KILL_WAIT
        while not self._terminate(run_id) and time.monotonic() < deadline:
            time.sleep(self.poll_interval)

    def _terminate(self, run_id: str) -> bool:
        """Ask the deployment to terminate the run; whether there is nothing more to ask.

        A run still starting cannot be terminated yet: kill() and the polling loop ask again.
        """
        try:
            answer = self.graphql(TERMINATE, {"runId": run_id}, own_client=True)["terminateRun"]
        except RunnerError as exc:
            logger.warning("Could not terminate Dagster run %s: %s", run_id, exc)
            return False
        kind = answer["__typename"]
        if kind == "TerminateRunFailure":
            status = answer["run"]["status"]
            if status in TERMINAL or status == "CANCELING":
                self._terminated = True
            else:
                logger.info("Dagster run %s is %s, not terminated yet", run_id, status)
        elif kind == "TerminateRunSuccess":
            self._terminated = True
        else:  # RunNotFoundError, UnauthorizedError, PythonError: asking again will not help
            logger.warning("Could not terminate Dagster run %s: %s", run_id, answer.get("message"))
            self._terminated = True
        return self._terminated


@hookimpl
def dagster_airflow_register_runners(register):
    register(GraphQLRunner)
