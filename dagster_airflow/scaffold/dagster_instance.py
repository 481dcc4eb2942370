"""With `scaffold --dagster-home`: the DAG's lines for the team's Dagster instance (in
DEFAULT_ARGS), its end task, and their words in the DAG's docs (docs/dagster-instance.md)."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from dagster_airflow.errors import ConfigurationError
from dagster_airflow.job.compile import StepGraph
from dagster_airflow.names import task_id_for
from dagster_airflow.scaffold.dag_literals import call, literal
from dagster_airflow.scaffold.doc_md import cell

# The DAG's end task with --dagster-home: it ends the DAG run's Dagster run.
END_TASK_ID = "dagster_run_end"


def instance_lines(dagster_home: str | None, dagster_ui_url: str | None) -> str:
    """DEFAULT_ARGS' lines of the team's Dagster instance (none without --dagster-home)."""
    if dagster_home is None:
        return ""
    lines = (
        "    # The team's Dagster instance: the Dagster home, as each step sees it, whose\n"
        "    # dagster.yaml names it. Each DAG run is one Dagster run there; without this line\n"
        "    # each step runs against an ephemeral instance (docs/dagster-instance.md).\n"
        f'    "dagster_home": {literal(dagster_home)},\n'
    )
    if dagster_ui_url is not None:
        lines += (
            "    # The team's Dagster UI: the tasks' links and step tabs open the run there.\n"
            f'    "dagster_ui_url": {literal(dagster_ui_url)},\n'
        )
    return lines


def end_task(dagster_home: str | None) -> str:
    """The task that ends the Dagster run: a teardown after every other task, so it runs
    whatever their states (a DAG run marked failed too) and does not count in the DAG run's."""
    if dagster_home is None:
        return ""
    return (
        "\n    # Ends the DAG run's Dagster run (SUCCESS, FAILURE, CANCELED) once every task is\n"
        "    # done.\n"
        "    ends = [task for task in dag.tasks if not task.downstream_task_ids]\n"
        + call(
            "    ends >> ",
            "DagsterOperator",
            [f"task_id={literal(END_TASK_ID)}", "ends_dagster_run=True"],
            ".as_teardown()",
        )
        + "\n"
    )


def check_instance(graph: StepGraph, dagster_home: str | None, dagster_ui_url: str | None) -> None:
    if dagster_ui_url is not None and not re.fullmatch(r"https?://\S+", dagster_ui_url):
        raise ConfigurationError(
            f"--dagster-ui-url {dagster_ui_url!r} is not an http(s) URL; give the address of "
            "the team's Dagster UI, such as https://dagster.example.com."
        )
    if dagster_ui_url is not None and dagster_home is None:
        raise ConfigurationError(
            f"--dagster-ui-url {dagster_ui_url!r} needs --dagster-home: without the team's "
            "instance no run reaches that UI; give both, or leave the URL out."
        )
    if dagster_home is not None and not PurePosixPath(dagster_home).is_absolute():
        raise ConfigurationError(
            f"--dagster-home {dagster_home!r} is not an absolute path; give the Dagster home "
            "folder as each step sees it, such as /opt/dagster/home."
        )
    if dagster_home is not None and END_TASK_ID in {task_id_for(s.key) for s in graph.steps}:
        raise ConfigurationError(
            f"job {graph.job_name!r} has a step {END_TASK_ID!r}, the task id that ends the "
            "Dagster run with --dagster-home; rename its op."
        )


def instance_text(dagster_home: str | None, dagster_ui_url: str | None) -> str:
    """Which Dagster instance the steps run against, for the DAG's docs."""
    if dagster_home is None:
        return (
            "Each step runs against an ephemeral Dagster instance: the team's Dagster sees "
            "nothing of these runs (scaffold with `--dagster-home` to show them there).\n\n"
        )
    shown = f" and shown at {cell(dagster_ui_url)}" if dagster_ui_url else ""
    return (
        f"Each DAG run is one Dagster run in the instance of the Dagster home "
        f"`{cell(dagster_home)}` (its dagster.yaml){shown}: its steps' events, materializations "
        f"and checks land there, and the task `{END_TASK_ID}` ends the run as the DAG run "
        "ends.\n\n"
    )
