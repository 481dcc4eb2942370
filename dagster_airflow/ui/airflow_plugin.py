"""The Airflow plugin of dagster-airflow: what `dagster-airflow install` installs (Airflow side).

Airflow finds it through the ``airflow.plugins`` entry point of the installed package, or through
the file `dagster-airflow install` writes into the plugins folder. It declares:

- the extra links every DagsterOperator task shows (see dagster_airflow.ui.links), so that
  `airflow plugins` lists them; the operator itself carries the same links, which is what makes
  Airflow 3 compute them;
- the timetable of a Dagster schedule (dagster_airflow.ui.timetable), which the scheduler can
  read back from a serialized DAG only if a plugin registers it;
- the Dagster step view (dagster_airflow.ui.step_view), a FastAPI app the api-server serves at
  ``/dagster-airflow``, and the "Dagster step" tab of every task instance that shows it;
- a listener (dagster_airflow.ui.listener) that has the scheduler import what the tasks need
  before it forks the processes that run them.
"""

from __future__ import annotations

import logging

from airflow.plugins_manager import AirflowPlugin

from dagster_airflow.distribution import AIRFLOW_PLUGIN, retired_package_problem
from dagster_airflow.ui import listener
from dagster_airflow.ui.links import DAGSTER_LINKS
from dagster_airflow.ui.timetable import DagsterCronTimetable

PLUGIN_NAME = AIRFLOW_PLUGIN
URL_PREFIX = "/dagster-airflow"
STEP_VIEW_HREF = URL_PREFIX + "/steps/{DAG_ID}/{RUN_ID}/{TASK_ID}?map_index={MAP_INDEX}"


class StepViewApp:
    """The step view's ASGI app, imported on its first request: every Airflow process loads
    this plugin (workers, scheduler, DAG processor), and only the api-server needs the view and
    the api-server modules it depends on."""

    def __init__(self) -> None:
        self._app = None

    async def __call__(self, scope, receive, send) -> None:
        if self._app is None:
            from dagster_airflow.ui.step_view import app

            self._app = app
        await self._app(scope, receive, send)

    def __repr__(self) -> str:
        return "dagster_airflow.ui.step_view:app"


STEP_VIEW_APP = {"app": StepViewApp(), "url_prefix": URL_PREFIX, "name": "Dagster step view"}

STEP_VIEW_TAB = {
    "name": "Dagster step",
    "destination": "task_instance",
    "href": STEP_VIEW_HREF,
    # With a route, the UI shows the view in a tab of the task instance's page (an iframe).
    "url_route": "dagster-step",
}


if retired_package_problem():  # said in the log of every Airflow process that loads plugins
    logging.getLogger(__name__).warning("%s", retired_package_problem())


class DagsterAirflowPlugin(AirflowPlugin):
    name = PLUGIN_NAME
    operator_extra_links = list(DAGSTER_LINKS)
    fastapi_apps = [STEP_VIEW_APP]
    external_views = [STEP_VIEW_TAB]
    timetables = [DagsterCronTimetable]
    listeners = [listener]


def registered_by_entry_point() -> bool:
    """Whether an installed distribution registers this plugin through ``airflow.plugins``."""
    import importlib.metadata

    return any(
        ep.value.startswith(__name__)
        for ep in importlib.metadata.entry_points(group="airflow.plugins")
    )
