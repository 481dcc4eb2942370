"""The job's environment: the variables a DAG hands every step (the wire: stdlib only).

A job reads some of its settings from its environment: a resource's ``dg.EnvVar("NAME")``,
``{env: NAME}`` in its run config. The scaffold finds them (dagster_airflow.job.environment) and
writes them into the DAG file as ``ENVIRONMENT``, a mapping the user fills, given to every task
through ``DEFAULT_ARGS["environment"]``. Each value is a string or an Airflow template
(``{{ conn.warehouse.password }}``) rendered on the Airflow worker; None means nothing provides
it yet, and the task fails at once with a sentence saying so. The runners hand the values to
the step's process environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dagster_airflow.errors import ConfigurationError

# The DagsterOperator argument (a template field, in DEFAULT_ARGS) and the DAG file's name.
ENVIRONMENT_ARG = "environment"
ENVIRONMENT_NAME = "ENVIRONMENT"
# POSIX names: what any process environment can carry (the runners' env options use the same).
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_variable_name(name: object) -> bool:
    """Whether ``name`` is an environment variable name (letters, digits and '_', not
    starting with a digit)."""
    return isinstance(name, str) and bool(_NAME.fullmatch(name))


def unprovided_sentence(names: list[str], job_name: str) -> str:
    """The sentence for variables the job reads that nothing provides."""
    quoted = ", ".join(repr(n) for n in names)
    what = f"the environment variable {quoted}" if len(names) == 1 else f"the variables {quoted}"
    flag = names[0]
    return (
        f"job {job_name!r} reads {what} (a resource's EnvVar or {{env: ...}} in its run config), "
        f"which nothing provides: fill it in the DAG file's {ENVIRONMENT_NAME}, or scaffold "
        f"again with --env {flag}=... (a template such as '{{{{ conn.NAME.password }}}}' keeps "
        "a secret out of the file)."
    )


def step_environment(environment: Any, job_name: str) -> dict[str, str]:
    """The variables a task hands its step, from the task's rendered ``environment``: checked
    (names, string values, no NUL), and every one provided. Raises ConfigurationError."""
    if environment is None:
        return {}
    if not isinstance(environment, Mapping):
        raise ConfigurationError(
            f"the DAG's {ENVIRONMENT_NAME} must be a mapping of variable names to values, such "
            f'as {{"WAREHOUSE_PASSWORD": "{{{{ conn.warehouse.password }}}}"}}, got '
            f"{environment!r}; fix it in the DAG file."
        )
    for name, value in environment.items():
        if not is_variable_name(name):
            raise ConfigurationError(
                f"{ENVIRONMENT_NAME} in the DAG file names the variable {name!r}, which is not "
                "an environment variable name; use letters, digits and '_', not starting with "
                "a digit."
            )
        if value is not None and (not isinstance(value, str) or "\0" in value):
            # The value itself is not shown: it may be a secret a template rendered.
            what = "a string holding NUL" if isinstance(value, str) else type(value).__name__
            raise ConfigurationError(
                f"{ENVIRONMENT_NAME}[{name!r}] in the DAG file must be a string without NUL (or "
                f"an Airflow template that renders one), got {what}; quote it in the DAG file."
            )
    missing = [name for name, value in environment.items() if value is None]
    if missing:
        raise ConfigurationError(unprovided_sentence(missing, job_name))
    return dict(environment)
