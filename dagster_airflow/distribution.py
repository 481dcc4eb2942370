"""Which installed distribution this package is, and the one it must never share an environment
with.

The module is `dagster_airflow`, as in the original 2019 project, but the distribution is
``dagster-on-airflow``: on the public index ``dagster-airflow`` is Dagster Labs' retired package,
which installs the same module and an ``airflow.plugins`` entry point. Two distributions that
write one module overwrite each other's files, and uninstalling either deletes files of the other,
so the CLI, the operator and the Airflow plugin each say so in one sentence when both are there.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging

DISTRIBUTION = "dagster-on-airflow"
RETIRED = "dagster-airflow"
# Our Airflow plugin's name and entry point: the retired package's are both dagster_airflow.
AIRFLOW_PLUGIN = "dagster_on_airflow"


def version() -> str | None:
    """This distribution's installed version; None when imported from a source tree."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.cache
def retired_package_problem() -> str | None:
    """One sentence when Dagster Labs' retired ``dagster-airflow`` is installed beside this
    package, with the fix; None when it is not (looked up once per process)."""
    try:  # a lookup by name: no scan of every installed distribution's metadata
        retired = importlib.metadata.distribution(RETIRED)
    except importlib.metadata.PackageNotFoundError:
        return None
    author = f"{retired.metadata.get('Author') or ''} {retired.metadata.get('Author-email') or ''}"
    what = (
        "the retired package dagster-airflow {} (Dagster Labs)"
        if "dagster" in author.lower() or "elementl" in author.lower()
        else "the package dagster-airflow {} (an older install of this one under its former name)"
    ).format(retired.version)
    return (
        f"{what} is installed in this environment beside {DISTRIBUTION}, and both write the "
        f"module dagster_airflow; run `pip uninstall dagster-airflow`, then reinstall "
        f"{DISTRIBUTION} (`pip install --force-reinstall` of its wheel), since the uninstall "
        "also deletes the files they share."
    )


def retired_provider_info() -> dict[str, str]:
    """What Airflow's provider discovery gets from the retired package's own entry point
    (``dagster_airflow.__init__:get_provider_info``) once our ``__init__`` replaced its file: a
    valid answer under its name, so that Airflow keeps working, and our sentence in its log."""
    problem = (
        retired_package_problem()
        or f"the retired package dagster-airflow is installed beside {DISTRIBUTION}"
    )
    logging.getLogger("dagster_airflow").warning("%s", problem)
    return {"package-name": RETIRED, "name": f"{RETIRED} (retired)", "description": problem}
