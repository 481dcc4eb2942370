"""`dagster-airflow install`: put the Airflow plugin's file into Airflow's plugins folder.

Installing the package is enough where Airflow sees its ``airflow.plugins`` entry point; the file
is for deployments that sync a plugins folder, and stays harmless where the entry point exists
(it then defines nothing, so Airflow does not report the plugin twice).
"""

from __future__ import annotations

from pathlib import Path

import attrs

from dagster_airflow import __version__
from dagster_airflow.files import airflow_folder, write_atomically

PLUGIN_FILENAME = "dagster_airflow_plugin.py"

PLUGIN_FILE = f'''"""The dagster-airflow Airflow plugin, written by `dagster-airflow install`.

It gives every DagsterOperator task links to its outputs, its event log and its Dagster run.
Written by dagster-airflow {__version__}: run `dagster-airflow install` again after upgrading;
delete this file to uninstall.
"""

from dagster_airflow.ui.airflow_plugin import DagsterAirflowPlugin, registered_by_entry_point

if registered_by_entry_point():
    # The installed package registers the plugin through its airflow.plugins entry point; a
    # second definition here would show in Airflow as a duplicate plugin.
    del DagsterAirflowPlugin
'''

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


@attrs.frozen
class Installed:
    path: Path
    action: str  # CREATED, UPDATED or UNCHANGED

    def describe(self) -> str:
        if self.action == UNCHANGED:
            return (
                f"The dagster-airflow Airflow plugin at {self.path} is up to date; nothing to do."
            )
        verb = "Installed" if self.action == CREATED else "Updated"
        return f"{verb} the dagster-airflow Airflow plugin at {self.path}."


def plugins_folder() -> Path:
    """Airflow's configured plugins folder (default $AIRFLOW_HOME/plugins)."""
    return airflow_folder("plugins_folder")


def install_plugin(folder: Path | None = None) -> Installed:
    """Write the plugin file into ``folder`` unless it is there already, as this version has it."""
    folder = folder or plugins_folder()
    path = folder / PLUGIN_FILENAME
    try:
        current = path.read_text()
    except FileNotFoundError:
        current = None
    if current == PLUGIN_FILE:
        return Installed(path, UNCHANGED)
    write_atomically(PLUGIN_FILE, folder, PLUGIN_FILENAME)
    return Installed(path, CREATED if current is None else UPDATED)
