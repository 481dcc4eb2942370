"""The Dagster step view: a FastAPI app the Airflow api-server serves (Airflow side).

``GET /steps/{dag_id}/{run_id}/{task_id}?map_index=-1&try_number=N`` is the HTML page and
``GET /api/steps/...`` its JSON twin (the plugin mounts the app at ``/dagster-airflow``). Both are
behind Airflow's own authentication and authorization, which plugin apps do not get by default:
every route depends on ``requires_access_dag(GET, TASK_INSTANCE)``, which accepts a bearer token
or the UI's session cookie and asks the configured auth manager whether the user may read the
DAG's task instances (401 without credentials, 403 for bad or insufficient ones).

The page reads the task instance from Airflow's database (its tries and state, the storage its
rendered fields name, the Dagster run URL a graphql runner pushed) and the step's event log from
the storage, with the credentials of the DAG's Airflow connection. Nothing is unpickled here.
"""

from __future__ import annotations

from typing import Any

import attrs
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from dagster_airflow.model import RunnerSpec, StorageSpec, dagster_run_id
from dagster_airflow.ui.step_html import render
from dagster_airflow.ui.step_page import StepPage, read_step_page

DAGSTER_RUN_URL_XCOM_KEY = "dagster_run_url"  # as dagster_airflow.ui.links pushes it
DEFAULT_RUNNER = "subprocess"  # as DagsterOperator defaults it

app = FastAPI(
    title="dagster-airflow step view",
    # On the app, not per route: a route added later cannot ship unprotected.
    dependencies=[
        Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.TASK_INSTANCE))
    ],
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)


def _task_instance(session, dag_id: str, run_id: str, task_id: str, map_index: int):
    from airflow.models.taskinstance import TaskInstance

    ti = session.scalar(
        select(TaskInstance).where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id,
            TaskInstance.map_index == map_index,
        )
    )
    if ti is None:
        raise HTTPException(
            404,
            f"no task instance {task_id!r} (map index {map_index}) in run {run_id!r} of DAG "
            f"{dag_id!r}; open the view from the task instance's page in the Airflow UI.",
        )
    return ti


def _state_of_try(session, ti, try_number: int) -> str | None:
    if try_number == ti.try_number:
        return ti.state
    from airflow.models.taskinstancehistory import TaskInstanceHistory

    return session.scalar(
        select(TaskInstanceHistory.state).where(
            TaskInstanceHistory.dag_id == ti.dag_id,
            TaskInstanceHistory.run_id == ti.run_id,
            TaskInstanceHistory.task_id == ti.task_id,
            TaskInstanceHistory.map_index == ti.map_index,
            TaskInstanceHistory.try_number == try_number,
        )
    )


def _task_fields(session, ti) -> dict[str, Any]:
    """The task's storage, runner and mapping key: as its last try rendered them, else as the
    DAG declares them."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rendered

    rendered = session.scalar(
        select(Rendered.rendered_fields).where(
            Rendered.dag_id == ti.dag_id,
            Rendered.run_id == ti.run_id,
            Rendered.task_id == ti.task_id,
            Rendered.map_index == ti.map_index,
        )
    )
    if rendered:
        return dict(rendered)
    from airflow.models.serialized_dag import SerializedDagModel

    dag = SerializedDagModel.get_dag(ti.dag_id, session=session)
    task = dag.get_task(ti.task_id) if dag is not None and dag.has_task(ti.task_id) else None
    return {name: getattr(task, name, None) for name in ("storage", "runner", "mapping_key")}


def _dagster_run_url(session, ti) -> str | None:
    from airflow.models.xcom import XComModel

    row = session.scalar(
        select(XComModel).where(
            XComModel.dag_id == ti.dag_id,
            XComModel.run_id == ti.run_id,
            XComModel.task_id == ti.task_id,
            XComModel.map_index == ti.map_index,
            XComModel.key == DAGSTER_RUN_URL_XCOM_KEY,
        )
    )
    value = XComModel.deserialize_value(row) if row is not None else None
    return value if isinstance(value, str) and value.startswith(("http://", "https://")) else None


def _storage(fields: dict[str, Any]):
    """The task's storage, holding the credentials of its Airflow connection."""
    from dagster_airflow.plugins.manager import get_plugins
    from dagster_airflow.task.connections import get_connection

    plugins = get_plugins()
    value = fields.get("storage")
    if not value:
        runner = RunnerSpec.from_value(fields.get("runner") or DEFAULT_RUNNER)
        value = plugins.runner(runner.name).cls.default_storage
    spec = StorageSpec.from_value(value)
    storage = plugins.storage(spec.name).create(spec.options)
    return spec, storage.use_credentials(storage.credentials_env(get_connection))


def step_page(
    session, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int | None
) -> StepPage:
    """Everything the view shows of one try of a task."""
    from dagster_airflow.errors import DagsterAirflowError

    ti = _task_instance(session, dag_id, run_id, task_id, map_index)
    tries = max(ti.try_number or 0, 1)
    number = tries if try_number is None else try_number
    if not 1 <= number <= tries:
        raise HTTPException(
            404,
            f"task {task_id!r} of run {run_id!r} has no try {number} (its tries are 1 to "
            f"{tries}); leave try_number out for the latest.",
        )
    fields = _task_fields(session, ti)
    page = StepPage(
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=map_index,
        try_number=number,
        tries=tries,
        state=_state_of_try(session, ti, number),
        dagster_run_id=dagster_run_id(dag_id, run_id),
        storage_name="?",
        dagster_run_url=_dagster_run_url(session, ti),
    )
    try:
        spec, storage = _storage(fields)
    except DagsterAirflowError as exc:
        return attrs.evolve(page, problem=str(exc))
    page = attrs.evolve(page, storage_name=spec.name)
    mapping_key = fields.get("mapping_key")
    if mapping_key is None and map_index >= 0:
        mapping_key = ti.rendered_map_index
    return read_step_page(page, storage, None if mapping_key is None else str(mapping_key))


# Airflow 3.3's UI fills {MAP_INDEX} into a tab's href only on a mapped task's page (the route of
# an unmapped one has no map index), so an unmapped task's "Dagster step" tab asks for
# map_index={MAP_INDEX} as it is written.
_UNFILLED_MAP_INDEX = "{MAP_INDEX}"


def _map_index(
    map_index: str = Query("-1", description="the task instance's map index (-1: not mapped)"),
) -> int:
    if map_index == _UNFILLED_MAP_INDEX:
        return -1
    try:
        return int(map_index)
    except ValueError:
        raise HTTPException(
            422, f"map_index must be a task instance's map index (an integer), not {map_index!r}"
        ) from None


_MAP_INDEX = Depends(_map_index)
_TRY = Query(None, ge=1, description="the try to show (default: the latest)")


@app.get("/steps/{dag_id}/{run_id}/{task_id}", response_class=HTMLResponse)
def step_html(
    dag_id: str,
    run_id: str,
    task_id: str,
    session: SessionDep,
    map_index: int = _MAP_INDEX,
    try_number: int | None = _TRY,
) -> HTMLResponse:
    page = step_page(session, dag_id, run_id, task_id, map_index, try_number)
    return HTMLResponse(render(page))


@app.get("/api/steps/{dag_id}/{run_id}/{task_id}")
def step_json(
    dag_id: str,
    run_id: str,
    task_id: str,
    session: SessionDep,
    map_index: int = _MAP_INDEX,
    try_number: int | None = _TRY,
) -> dict[str, Any]:
    return step_page(session, dag_id, run_id, task_id, map_index, try_number).to_dict()
