"""The run context: what the operator hands a runner's ``run`` (Airflow side, no Airflow import).

Built once per task by the operator (dagster_airflow.task.context.for_task): the storage
resolved once, its credentials environment, the task log, and Airflow's connections, masking
and task links as plain callables. A runner reads connections, masks secrets and pushes links
through it, so no runner imports Airflow, the plugin manager or the UI plugin.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import attrs

from dagster_airflow.redaction import is_credential_name

__all__ = ["ConnectionGetter", "RunContext", "is_credential_name"]

if TYPE_CHECKING:
    from dagster_airflow.connection import Connection
    from dagster_airflow.storage.base import IntermediateStorage

ConnectionGetter = Callable[[str], "Connection | None"]


def _credential(name: str, value: str) -> bool:
    return is_credential_name(name)


def _no_connection(conn_id: str) -> Connection | None:
    return None


def _no_mask(value: str) -> None:
    return None


def _no_link(url: str) -> bool:
    return False


@attrs.frozen
class RunContext:
    """What a runner may use of the task it runs for.

    :param log: the task log; a step's output goes there (through a StepLog).
    :param secret_env: the storage's credentials as environment variables: hand them to the
        worker, never log them.
    :param job_env: the variables the job reads (the DAG's ENVIRONMENT, rendered): hand them to
        the step's environment wherever it runs, never log them.
    :param storage: the task's intermediate storage, resolved once (None when unknown).
    :param connection: an Airflow connection by id (a ``dagster_airflow.connection.Connection``,
        its extra parsed), or None when there is none.
    :param mask: have Airflow redact a value from every task log line from now on.
    :param push_link: show a URL as the task's "Dagster run" link; False outside a task.
    :param is_secret: whether a variable ``(name, value)`` of the step's environment holds a
        secret: in a task, one that Airflow's masker hides.
    """

    log: logging.Logger
    secret_env: Mapping[str, str] = attrs.field(factory=dict)
    job_env: Mapping[str, str] = attrs.field(factory=dict)
    storage: IntermediateStorage | None = None
    connection: ConnectionGetter = _no_connection
    mask: Callable[[str], None] = _no_mask
    push_link: Callable[[str], bool] = _no_link
    is_secret: Callable[[str, str], bool] = _credential

    def mask_values(self, values) -> None:
        """Mask every non-empty value."""
        for value in values:
            if value:
                self.mask(value)

    def secret_names(self, env: Mapping[str, str]) -> list[str]:
        """The names of the variables in ``env`` that hold secrets (the worker redacts their
        values: dagster_airflow.redaction)."""
        return sorted(name for name, value in env.items() if value and self.is_secret(name, value))
