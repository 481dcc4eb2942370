"""A job that differs under Airflow on purpose: its op tells where it runs by the run's tags.

The comparison kit's own test: a report must name exactly this difference."""

import dagster as dg


@dg.op
def where_am_i(context: dg.OpExecutionContext) -> str:
    return "airflow" if "dagster-airflow/dag_id" in context.run.tags else "dagster"


@dg.op
def greeting(where: str) -> str:
    return f"hello from {where}"


@dg.job
def divergent():
    greeting(where_am_i())
