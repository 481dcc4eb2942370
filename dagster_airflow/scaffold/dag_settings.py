"""What a DAG file says of the job around its steps: its Dagster schedule, tags, pools,
priorities, task limit and timeout, as the literals render.py writes (developer's machine).

Every value here is written through dag_literals' ``string_literal`` or as a number, and each is
among the values the scaffold checks back before writing the file.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from dagster_airflow.errors import ConfigurationError
from dagster_airflow.job.compile import StepGraph
from dagster_airflow.scaffold.dag_literals import string_literal

# The task that evaluates a schedule function's tick, upstream of every step (see
# dagster_airflow.task.schedule). Its id holds a character no step key has.
TICK_TASK_ID = "dagster_schedule_tick"
TICK_VARIABLE = "schedule_tick"
SCHEDULE_NAME_TAG = "dagster/schedule_name"
# The start_date of a DAG that follows a Dagster schedule: far enough back that `dags test` and
# a backfill can run any tick of it; the timetable starts the scheduler at the next tick anyway.
SCHEDULE_START = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)


def _strings(values) -> str:
    return "[" + ", ".join(string_literal(v) for v in values) + "]"


def schedule_source(graph: StepGraph) -> str | None:
    """The DAG's schedule for the job's Dagster schedule: a timetable that ticks as Dagster's."""
    schedule = graph.schedule
    if schedule is None:
        return None
    return (
        f"DagsterCronTimetable({_strings(schedule.crons)}, "
        f"timezone={string_literal(schedule.timezone)})"
    )


def has_tick(graph: StepGraph) -> bool:
    """Whether a schedule function decides each run: the DAG gets a tick task."""
    return graph.schedule is not None and graph.schedule.evaluated


def dag_tags(graph: StepGraph) -> list[str]:
    """The DAG's tags: "dagster", the job's tags, a static schedule's, as ``key:value``."""
    from dagster_airflow.job.controls import dag_tags as tags_of

    tags = ["dagster", *graph.controls.tags]
    if graph.schedule is not None:
        more, _ = tags_of(graph.schedule.tags, "the schedule")
        tags += [t for t in more if t not in tags]
    return tags


def dag_keywords(graph: StepGraph) -> list[str]:
    """``name=value`` arguments of the DAG call besides the ones every file has."""
    controls, keywords = graph.controls, []
    if graph.schedule is not None:
        keywords.append(f"is_paused_upon_creation={not graph.schedule.running!r}")
    if controls.max_active_tasks is not None:
        keywords.append(f"max_active_tasks={int(controls.max_active_tasks)!r}")
    if controls.timeout_seconds is not None:
        if not math.isfinite(controls.timeout_seconds) or controls.timeout_seconds <= 0:
            raise ConfigurationError(
                f"the dagster/max_runtime of job {graph.job_name!r} is "
                f"{controls.timeout_seconds!r} seconds, which a dagrun_timeout cannot be; give "
                "it a positive number of seconds."
            )
        keywords.append(f"dagrun_timeout=datetime.timedelta(seconds={controls.timeout_seconds!r})")
    return keywords


def run_tags(graph: StepGraph) -> dict[str, str]:
    """The Dagster run tags every run of the DAG gets: a schedule's, as Dagster's daemon adds."""
    if graph.schedule is None:
        return {}
    return {**graph.schedule.tags, SCHEDULE_NAME_TAG: graph.schedule.name}


def default_args(graph: StepGraph) -> dict[str, Any]:
    """DEFAULT_ARGS entries besides the ones every file has, for every task."""
    found: dict[str, Any] = {}
    if graph.controls.priority is not None:
        found["priority_weight"] = graph.controls.priority
    if run_tags(graph):
        found["run_tags"] = run_tags(graph)
    if has_tick(graph):
        found["schedule_tick"] = TICK_TASK_ID
    return found


def step_keywords(graph: StepGraph) -> dict[str, list[str]]:
    """Each step's own task arguments: its Airflow pool and priority weight."""
    found = {}
    for key, controls in graph.step_controls.items():
        keywords = []
        if controls.pool is not None:
            keywords.append(f"pool={string_literal(controls.pool)}")
        if controls.priority is not None:
            keywords.append(f"priority_weight={int(controls.priority)!r}")
        if keywords:
            found[key] = keywords
    return found


def tick_task(graph: StepGraph) -> tuple[str, str]:
    """The tick task's line and its edges to the steps that have no upstream step."""
    if not has_tick(graph):
        return "", ""
    line = (
        f"    {TICK_VARIABLE} = DagsterOperator(task_id={string_literal(TICK_TASK_ID)}, "
        f"schedule={string_literal(graph.schedule.name)})"
    )
    return line, TICK_VARIABLE


def expected_values(graph: StepGraph) -> dict[tuple, object]:
    """What these values must evaluate back to in the file (see dag_check.py)."""
    expected: dict[tuple, object] = {("DAG", "tags"): dag_tags(graph)}
    if graph.schedule is not None:
        expected[("DAG", "is_paused_upon_creation")] = not graph.schedule.running
    if graph.controls.max_active_tasks is not None:
        expected[("DAG", "max_active_tasks")] = int(graph.controls.max_active_tasks)
    for name, value in default_args(graph).items():
        expected[("DEFAULT_ARGS", name)] = value
    return expected


def refusals(graph: StepGraph, runner_name: str) -> None:
    """One sentence for a schedule the chosen runner cannot evaluate."""
    if has_tick(graph) and runner_name == "graphql":
        raise ConfigurationError(
            f"schedule {graph.schedule.name!r} of job {graph.job_name!r} computes each run in "
            "a function, which the graphql runner cannot evaluate (it launches steps, not "
            "schedule ticks, on the Dagster deployment); scaffold with another runner, or let "
            "the deployment's own Dagster daemon run the schedule."
        )
