"""A task's runner, storage and run context, resolved once, bound to Airflow's task API.

The operator calls ``resolve`` and ``for_task`` in ``execute``; the task's extra links
(dagster_airflow.ui.links) read the same resolution afterwards. Airflow is imported inside the
functions that need it, so a runner driven outside Airflow (a test) gets the same context.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import attrs

from dagster_airflow.connection import Connection
from dagster_airflow.runners.context import RunContext, is_credential_name

DEFAULT_RUNNER = "subprocess"
# The XCom a runner's push_link writes, with the URL of the step's run in the Dagster UI, and the
# mark on the task that it did (so that links of other tasks do not look the XCom up).
DAGSTER_RUN_URL_XCOM_KEY = "dagster_run_url"
PUSHED = "_dagster_airflow_pushed_run_url"
# Where the operator keeps what it resolved, for the links computed once the task has ended.
RESOLVED = "_dagster_airflow_resolved"
# Where the operator keeps what its execute returned (its XCom), for the outputs link: read
# there, not pulled back through the execution API.
RETURNED = "_dagster_airflow_returned"
# A template that reads a connection or a variable (so the secrets backend): {{ conn.x.password }},
# {{ var.value.token }}, {{ var.json.creds.key }}.
_READS_SECRETS = re.compile(r"\{\{.*?\b(conn|var)\b.*?\}\}", re.DOTALL)


@attrs.frozen
class Resolved:
    """The runner and storage a task names (or defaults to), with the storage built once."""

    runner_spec: Any  # RunnerSpec
    runner: Any  # the plugin manager's Backend of the runner
    storage_spec: Any  # StorageSpec
    storage: Any  # IntermediateStorage


def resolve(runner: Any, storage: Any) -> Resolved:
    """The task's runner and storage: the named ones, else the subprocess runner and that
    runner's default storage. Raises ConfigurationError / PluginError for a wrong name."""
    from dagster_airflow.model import RunnerSpec, StorageSpec
    from dagster_airflow.plugins.manager import get_plugins

    plugins = get_plugins()
    runner_spec = RunnerSpec.from_value(runner or DEFAULT_RUNNER)
    backend = plugins.runner(runner_spec.name)
    storage_spec = StorageSpec.from_value(storage or backend.cls.default_storage)
    built = plugins.storage(storage_spec.name).create(storage_spec.options)
    return Resolved(runner_spec, backend, storage_spec, built)


def connection(conn_id: str) -> Connection | None:
    """An Airflow connection, its extra parsed, or None when there is no such connection."""
    from airflow.sdk import Connection as AirflowConnection

    from dagster_airflow.task.airflow_compat import AirflowNotFoundException

    try:
        conn = AirflowConnection.get(conn_id)
    except AirflowNotFoundException:
        return None
    return Connection.parse(conn, conn_id)


def mask(value: str) -> None:
    """Have Airflow redact ``value`` from every task log line, in each form a line may hold it
    (JSON-escaped, in a repr ...: dagster_airflow.redaction.forms)."""
    from airflow.sdk.log import mask_secret

    from dagster_airflow.redaction import forms

    if value:
        for form in sorted(forms(value)):
            mask_secret(form)


def is_secret(name: str, value: str) -> bool:
    """Whether the step's variable ``name=value`` holds a secret: a credential's name, or what
    Airflow's masker hides (a sensitive name such as DB_PASSWORD, a connection's password, a
    value masked as it was read from a connection, variable or the secrets backend)."""
    from airflow.sdk.log import redact  # the masker mask_secret fills

    return is_credential_name(name) or redact(value, name) != value


def mask_credentials(env: Mapping[str, str]) -> None:
    """Mask the credentials among these variables. Only credentials: masking a region or an
    endpoint URL would redact "us-east-1" everywhere."""
    for name, value in env.items():
        if value and is_credential_name(name):
            mask(value)


def mask_templated(rendered: Any, source: Any) -> None:
    """Mask every value of a task's option that a template read from a connection or a variable
    (``env={DB_PASSWORD: "{{ conn.warehouse.password }}"}``), whatever its name: Airflow masks
    only a connection's password and extra, and variables with a sensitive name."""
    if isinstance(source, str):
        if isinstance(rendered, str) and _READS_SECRETS.search(source):
            mask(rendered)
    elif isinstance(source, Mapping) and isinstance(rendered, Mapping):
        for key, value in source.items():
            if key in rendered:
                mask_templated(rendered[key], value)
    elif isinstance(source, list | tuple) and isinstance(rendered, list | tuple):
        for item, value in zip(rendered, source, strict=False):
            mask_templated(item, value)


def push_dagster_run_url(url: str) -> bool:
    """Show ``url`` as this task's "Dagster run" link: pushed as the XCom ``dagster_run_url``
    of the running task instance, which is marked as having pushed it. Outside a running
    Airflow task there is no task to link from: nothing is pushed and it returns False."""
    from airflow.sdk import get_current_context

    try:
        ti = get_current_context()["ti"]
    except RuntimeError:
        return False
    ti.xcom_push(key=DAGSTER_RUN_URL_XCOM_KEY, value=url)
    setattr(ti.task, PUSHED, True)
    return True


def job_environment(environment: Any, job_name: str, runner_cls: Any) -> dict[str, str]:
    """The job's variables a task hands its step (its rendered ``environment``), each one
    provided, for a runner that takes them. Raises ConfigurationError."""
    from dagster_airflow.environment import ENVIRONMENT_NAME, step_environment
    from dagster_airflow.errors import ConfigurationError

    env = step_environment(environment, job_name)
    if env and not getattr(runner_cls, "takes_environment", True):
        raise ConfigurationError(
            f"the {runner_cls.name} runner's steps run on a system that reads its own "
            f"environment, so the DAG's {ENVIRONMENT_NAME} ({', '.join(sorted(env))}) cannot "
            f"reach them; set those variables there and remove {ENVIRONMENT_NAME} from the DAG "
            "file."
        )
    return env


def for_task(
    log: logging.Logger,
    storage: Any,
    secret_env: Mapping[str, str],
    job_env: Mapping[str, str] | None = None,
) -> RunContext:
    """The context the operator hands its runner; the credentials, and the job's variables
    with a credential's name, are masked first (a template's are already: mask_templated)."""
    mask_credentials(secret_env)
    mask_credentials(job_env or {})
    return RunContext(
        log=log,
        secret_env=dict(secret_env),
        job_env=dict(job_env or {}),
        storage=storage,
        connection=connection,
        mask=mask,
        push_link=push_dagster_run_url,
        is_secret=is_secret,
    )


def outside_task(
    request: Any,
    log: logging.Logger,
    secret_env: Mapping[str, str],
    job_env: Mapping[str, str] | None = None,
) -> RunContext:
    """The context of a runner driven directly (a test kit, a script): the request's storage
    (None when it cannot be built here), and Airflow's connections and masking."""
    from dagster_airflow.errors import DagsterAirflowError
    from dagster_airflow.plugins.manager import get_plugins

    try:
        spec = request.storage
        storage = get_plugins().storage(spec.name).create(spec.options)
    except DagsterAirflowError as exc:
        log.debug("No storage %r for the runner here: %s", request.storage.name, exc)
        storage = None
    return for_task(log, storage, secret_env, job_env)
