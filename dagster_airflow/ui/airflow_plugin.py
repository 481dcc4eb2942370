"""The Airflow plugin of dagster-airflow: what `dagster-airflow install` installs (Airflow side).

Airflow finds it through the ``airflow.plugins`` entry point of the installed package, or through
the file `dagster-airflow install` writes into the plugins folder. It declares the extra links every
DagsterOperator task shows (see dagster_airflow.ui.links), so that `airflow plugins` lists
them; the operator itself carries the same links, which is what makes Airflow 3 compute them.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from dagster_airflow.ui.links import DAGSTER_LINKS

PLUGIN_NAME = "dagster_airflow"


class DagsterAirflowPlugin(AirflowPlugin):
    name = PLUGIN_NAME
    operator_extra_links = list(DAGSTER_LINKS)


def registered_by_entry_point() -> bool:
    """Whether an installed distribution registers this plugin through ``airflow.plugins``."""
    import importlib.metadata

    return any(
        ep.value.startswith(__name__)
        for ep in importlib.metadata.entry_points(group="airflow.plugins")
    )
