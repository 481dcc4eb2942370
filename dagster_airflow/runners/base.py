"""The StepRunner interface. Airflow side: no Dagster import, and no SDK import here."""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from dagster_airflow.model import REQUEST_ENV_VAR, StepRequest
from dagster_airflow.redaction import SECRET_NAMES_ENV_VAR
from dagster_airflow.runners.context import RunContext
from dagster_airflow.step_result import StepResult

__all__ = ["WORKER_COMMAND", "RunContext", "StepRunner"]

# The worker's command, as an image or a virtual environment with dagster-airflow installed has it.
WORKER_COMMAND = ("dagster-airflow", "execute-step")
_LOG = logging.getLogger(__name__)


class StepRunner(ABC):
    """Runs one step's worker somewhere, streams its output into the task log, and reports.

    Subclasses set ``name``, take their options as keyword arguments of ``__init__`` (checked
    against the DAG's configuration before the runner is made), and implement ``run``. A runner
    whose steps run elsewhere (a container, a cloud task, a deployment) builds on
    dagster_airflow.runners.lifecycle.RemoteRunner instead, which owns the loop.
    """

    name: ClassVar[str]
    # The storage a DAG gets when it names none: one that steps on other machines can reach.
    default_storage: ClassVar[str] = "s3"
    # Whether the runner hands the job's variables (the DAG's ENVIRONMENT) to the step; one
    # whose step reads another system's environment (a Dagster deployment) sets False.
    takes_environment: ClassVar[bool] = True

    @classmethod
    def scaffold_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """The options to write into a scaffolded DAG file, given the ones the user passed."""
        return options

    @abstractmethod
    def run(self, request: StepRequest, context: RunContext) -> StepResult:
        """Run the worker for ``request`` and wait for it.

        ``context`` is the RunContext the operator built (a test builds one with
        ``dagster_airflow.testing.run_context_for``). ``context.secret_env`` holds the storage's
        credentials: hand it to the worker's environment and never log it. Feed every line of
        the worker's output to a ``StepLog`` (logging to ``context.log``) as it comes.
        """

    def kill(self) -> None:  # noqa: B027 - a runner with nothing to stop need not override
        """Stop the step if it is running (Airflow's on_kill, a timeout). Safe to call anytime."""

    @staticmethod
    def worker_env(
        request: StepRequest,
        secret_env: RunContext | Mapping[str, str],
        step_env: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """The environment a worker needs besides its platform's: the request, the credentials,
        the job's variables (``context.job_env``), and the names of the variables that hold
        secrets, among those and the ``step_env`` the runner gives the step (its ``env``
        option): the worker redacts their values. Given a mapping instead of a context, that
        mapping is the credentials (a runner that keeps them out of the step passes {})."""
        context = secret_env if isinstance(secret_env, RunContext) else RunContext(log=_LOG)
        credentials = context.secret_env if secret_env is context else secret_env
        env = {**context.job_env, **credentials, REQUEST_ENV_VAR: request.to_json()}
        names = context.secret_names({**(step_env or {}), **context.job_env, **credentials})
        if names:
            env[SECRET_NAMES_ENV_VAR] = json.dumps(names)
        return env
