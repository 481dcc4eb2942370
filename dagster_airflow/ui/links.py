"""Extra links of every DagsterOperator task: the step's outputs and event log in the intermediate
storage, and the run in the Dagster UI where a runner reported one (Airflow side).

An object store's links open its console (S3, GCS); a storage a browser cannot open from the UI
(the filesystem's file:// URLs, which Airflow 3 drops) links to the step view
(dagster_airflow.ui.step_view), which reads the step's outputs and events for the user.

Airflow 3 computes an operator's extra links in the worker, once the task has finished (success
or failure), and stores each as an XCom (``_link_<class name>``) that the API server and the UI
read. So ``get_link`` runs next to the operator, with the task instance at hand: it reads the
task's XComs and its runner and storage configuration, and never raises (a link it cannot make is
an empty string, which the UI shows as a disabled button).

The Dagster UI link follows a small contract: a runner that knows where its step's run is shown
(the graphql runner) calls its run context's ``push_link(url)`` while it runs
(dagster_airflow.task.context.push_dagster_run_url). That pushes the URL as the
XCom ``dagster_run_url`` of the current task instance (for whoever wants it: the link, downstream
tasks, the REST API) and notes on the task that it did, so that tasks whose runner pushed nothing
do not look the XCom up (Airflow logs a missing XCom as an error).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from dagster_airflow.task.context import DAGSTER_RUN_URL_XCOM_KEY, push_dagster_run_url

log = logging.getLogger(__name__)

__all__ = ["DAGSTER_LINKS", "DAGSTER_RUN_URL_XCOM_KEY", "push_dagster_run_url"]
# Names of dagster_airflow.task.context this module also offers. Imported when first used, not
# here: the DAG processor imports these links with the operator at every parse, and never
# computes one.
_FROM_TASK_CONTEXT = ("DAGSTER_RUN_URL_XCOM_KEY", "push_dagster_run_url")


def __getattr__(name: str) -> Any:
    if name in _FROM_TASK_CONTEXT:
        from dagster_airflow.task import context as task_context

        return getattr(task_context, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _step_storage(operator: Any, ti_key: Any):
    """The task's storage and the Dagster run id its step used: what DagsterOperator.execute
    resolved (once per task), else resolved the same way."""
    from dagster_airflow.model import dagster_run_id
    from dagster_airflow.task.context import RESOLVED, resolve

    resolved = getattr(operator, RESOLVED, None) or resolve(
        operator.setting("runner"), operator.setting("storage")
    )
    return resolved.storage, dagster_run_id(ti_key.dag_id, ti_key.run_id)


def _xcom(ti_key: Any, key: str) -> Any:
    # In the worker the "key" is the running task instance itself, which can pull XComs.
    return ti_key.xcom_pull(task_ids=ti_key.task_id, key=key, map_indexes=ti_key.map_index)


def _dagster_step_key(operator: Any) -> str:
    # A mapped task's operator, as the worker renders it, knows its mapping key.
    return getattr(operator, "dagster_step_key", None) or operator.step_key


class _DagsterLink(BaseOperatorLink):
    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        try:
            return self.link(operator, ti_key) or ""
        except Exception as exc:  # a missing link must never fail the task
            log.warning("No %r link for task %s: %s", self.name, ti_key.task_id, exc)
            return ""

    def link(self, operator: Any, ti_key: Any) -> str | None:
        raise NotImplementedError


# Where the plugin serves the step view (dagster_airflow.ui.airflow_plugin).
STEP_VIEW_PATH = "/dagster-airflow/steps"


def step_view_url(ti_key: Any) -> str:
    """The task try's page in the step view: under Airflow's ``[api] base_url`` where it is set,
    else a same-origin path (which the UI shows as a link too)."""
    from urllib.parse import quote, urlencode

    base = ""
    try:
        from dagster_airflow.task.airflow_compat import conf

        base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    except Exception:  # no configuration at hand: the same-origin path still works
        pass
    path = "/".join(
        quote(str(part), safe="") for part in (ti_key.dag_id, ti_key.run_id, ti_key.task_id)
    )
    query = {"map_index": ti_key.map_index}
    if getattr(ti_key, "try_number", None):
        query["try_number"] = ti_key.try_number
    return f"{base}{STEP_VIEW_PATH}/{path}?{urlencode(query)}"


def _browsable(url: str, ti_key: Any) -> str:
    """A console URL as it is; anything a browser would not open from the UI (a file:// URL:
    Airflow 3 drops it silently) becomes the step view's page, which reads it for the user."""
    return url if url.startswith(("http://", "https://")) else step_view_url(ti_key)


class StepOutputsLink(_DagsterLink):
    """The step's output in the storage (its folder when it wrote several): from its XCom."""

    name = "Dagster outputs"

    def link(self, operator: Any, ti_key: Any) -> str | None:
        if getattr(ti_key, "state", None) != "success":
            return None  # only a successful step returned the URIs of its outputs
        from dagster_airflow.task.context import RETURNED

        # What execute returned, kept on the task; else (a task that did not keep it) its XCom.
        outputs = getattr(operator, RETURNED, None)
        if outputs is None:
            outputs = _xcom(ti_key, "return_value")
        if not outputs:
            return None
        storage, run_id = _step_storage(operator, ti_key)
        step_key = _dagster_step_key(operator)
        # A dict of output URIs; a list is the mapping keys of a dynamic output: its folder.
        if isinstance(outputs, dict) and len(outputs) == 1:
            (output_name,) = outputs
            url = storage.browse_url(storage.key(run_id, step_key, output_name))
        else:
            url = storage.browse_url(f"{run_id}/{step_key}/", folder=True)
        return _browsable(url, ti_key)


class StepEventLogLink(_DagsterLink):
    """The step's Dagster event log, which the worker writes next to its outputs whether the
    step succeeded or not. Not looked up: the Airflow process may hold no storage credentials
    (they go to the worker), and links must not make the task wait on the network."""

    name = "Dagster event log"

    def link(self, operator: Any, ti_key: Any) -> str | None:
        from dagster_airflow.storage.base import EVENT_LOG_NAME

        storage, run_id = _step_storage(operator, ti_key)
        url = storage.browse_url(storage.key(run_id, _dagster_step_key(operator), EVENT_LOG_NAME))
        return _browsable(url, ti_key)


class DagsterRunLink(_DagsterLink):
    """The step's run in the Dagster UI, where the runner pushed its URL (the graphql runner)."""

    name = "Dagster run"

    def link(self, operator: Any, ti_key: Any) -> str | None:
        from dagster_airflow.task.context import DAGSTER_RUN_URL_XCOM_KEY, PUSHED

        if not getattr(operator, PUSHED, False):
            return None
        return _xcom(ti_key, DAGSTER_RUN_URL_XCOM_KEY)


DAGSTER_LINKS = (StepOutputsLink(), StepEventLogLink(), DagsterRunLink())


def links_to_write(operator: Any) -> tuple[_DagsterLink, ...]:
    """The operator's extra links: all three where Airflow serializes the DAG (they are the UI's
    buttons); in the worker, once the step ran, only those that have a URL.

    Airflow's task runner writes one XCom per link it is given when the task ends, an empty one
    included: an execution API call per link and task (issue 28). The API server reads a link
    back from its XCom and shows a missing one as it shows an empty one (a disabled button:
    airflow.serialization.definitions.operatorlink.XComOperatorLink returns "" for both), so
    leaving out a link without a URL changes nothing a user sees.
    """
    from dagster_airflow.task.context import PUSHED, RESOLVED, RETURNED

    if getattr(operator, RESOLVED, None) is None:  # not run here: parsing, serializing
        return DAGSTER_LINKS
    links: list[_DagsterLink] = []
    if getattr(operator, RETURNED, None):  # a step that succeeded with outputs
        links.append(DAGSTER_LINKS[0])
    links.append(DAGSTER_LINKS[1])  # the event log: written whether the step succeeded or not
    if getattr(operator, PUSHED, False):  # the runner reported its Dagster run
        links.append(DAGSTER_LINKS[2])
    return tuple(links)
