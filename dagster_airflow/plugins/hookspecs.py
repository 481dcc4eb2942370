"""The hookspecs: the only extension points of dagster-airflow.

A plugin implements either hook in a module named by an entry point of the group
``dagster_airflow``; the built-in backends register through the same two hooks.
"""

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("dagster_airflow")


@hookspec
def dagster_airflow_register_runners(register: Callable[[type], None]) -> None:
    """Register step runners: where an Airflow task runs its Dagster step.

    :param register: call it with each runner class (a subclass of
        ``dagster_airflow.runners.base.StepRunner`` with a unique ``name``).
    """


@hookspec
def dagster_airflow_register_storages(register: Callable[[type], None]) -> None:
    """Register intermediate storages: where steps write their outputs for the next steps.

    :param register: call it with each storage class (a subclass of
        ``dagster_airflow.storage.base.IntermediateStorage`` with a unique ``name``).
    """
