"""`dagster-airflow install`: the Airflow UI plugin into Airflow's plugins folder."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from dagster_airflow.errors import ConfigurationError


def add_parser(commands: argparse._SubParsersAction) -> None:
    install = commands.add_parser(
        "install",
        help="install the Airflow plugin (task links to outputs, event logs, Dagster runs)",
        description="Write the dagster-airflow Airflow plugin into Airflow's plugins folder; "
        "running it again changes nothing unless the plugin changed.",
    )
    install.add_argument(
        "--plugins-folder",
        help="where to write it (default: Airflow's, $AIRFLOW_HOME/plugins or "
        "AIRFLOW__CORE__PLUGINS_FOLDER)",
    )
    install.set_defaults(handler=run)


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from dagster_airflow.ui.install import install_plugin

    folder = Path(args.plugins_folder).expanduser() if args.plugins_folder else None
    try:
        installed = install_plugin(folder)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot write the Airflow plugin into {exc.filename!r}: {exc.strerror}; pass "
            "--plugins-folder or set AIRFLOW__CORE__PLUGINS_FOLDER to a folder you can write."
        ) from exc
    print(installed.describe())
    return 0
