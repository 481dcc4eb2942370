"""The DAG file's ENVIRONMENT: the variables the job reads, filled from ``--env NAME=VALUE``.

The job's variables are found by compiling it (dagster_airflow.job.environment: a resource's
EnvVar, ``{env: NAME}`` in run config), never read. Each is written into the DAG file, in the
order Dagster reads them, with the value ``--env`` gave it or None (not provided: the task
fails at once until it is). A value is written as a checked literal (dag_literals), and a
literal one ends up in the file: a secret comes from a template that Airflow renders on the
worker (``{{ conn.warehouse.password }}``), which is refused for no name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dagster_airflow.environment import ENVIRONMENT_NAME, is_variable_name
from dagster_airflow.errors import ConfigurationError, DagsterAirflowError
from dagster_airflow.redaction import is_credential_name
from dagster_airflow.scaffold.dag_literals import string_literal

COMMENT = """\
# The environment variables the job reads (a resource's dg.EnvVar, {env: ...} in its run
# config), handed to every step by its runner. A value is text or an Airflow template rendered
# on the worker, such as "{{ conn.warehouse.password }}" or "{{ var.value.name }}": what a
# template reads from a connection, a variable or the secrets backend is masked, while text
# written here is plain in this file. None: not provided yet, and each task fails at once until
# it is (scaffold again with --env NAME=VALUE, or fill it here). Remove an entry that the step's
# own environment provides (its image, the runner's env option).
"""


def environment_flags(values: Sequence[str]) -> dict[str, str]:
    """The ``--env NAME=VALUE`` flags as a mapping, each checked: a variable name, and no
    secret typed in plain text (a credential's name needs a template). A command line cannot
    hold a NUL, which no environment could carry."""
    given: dict[str, str] = {}
    for text in values:
        name, sep, value = text.partition("=")
        if not sep or not is_variable_name(name):
            shown = name if sep else text
            raise ConfigurationError(
                f"--env {shown!r} does not name an environment variable; write it as "
                "--env NAME=VALUE with NAME of letters, digits and '_', not starting with a "
                "digit, such as --env WAREHOUSE_PASSWORD='{{ conn.warehouse.password }}'."
            )
        if value and "{{" not in value and is_credential_name(name):
            # The value is not shown: it may be the secret itself.
            raise ConfigurationError(
                f"--env {name}= gives a secret's variable a literal value, which the DAG file "
                "and its SCAFFOLD_COMMAND would keep in plain text; give an Airflow template "
                f"instead, such as --env {name}='{{{{ conn.NAME.password }}}}' or "
                f"'{{{{ var.value.NAME }}}}'."
            )
        given[name] = value
    return given


def dag_environment(
    names: Sequence[str], given: Mapping[str, str], runner: str
) -> dict[str, str | None]:
    """ENVIRONMENT: the job's variables (``names``) with their ``--env`` values, or None, then
    the other ``--env`` names; empty for a runner whose steps read their own environment."""
    from dagster_airflow.plugins.manager import get_plugins

    try:
        takes_environment = get_plugins().runner(runner).cls.takes_environment
    except DagsterAirflowError:  # `check` of a file whose plugin runner is not installed here
        takes_environment = True
    if not takes_environment:
        if given:
            raise ConfigurationError(
                f"--env {next(iter(given))} is for steps that Airflow starts, but the {runner} "
                "runner's steps run in the Dagster deployment, which reads its own environment; "
                "set the variable there (its code server and run workers) and leave --env out."
            )
        return {}
    environment: dict[str, str | None] = {name: given.get(name) for name in names}
    environment.update({name: value for name, value in given.items() if name not in names})
    return environment


def environment_block(environment: Mapping[str, str | None]) -> str:
    """The DAG file's ENVIRONMENT assignment with its comment, one variable a line ("" when the
    job reads none)."""
    if not environment:
        return ""
    lines = "".join(
        f"    {string_literal(name)}: {'None' if value is None else string_literal(value)},\n"
        for name, value in environment.items()
    )
    return f"{COMMENT}{ENVIRONMENT_NAME} = {{\n{lines}}}\n\n"
