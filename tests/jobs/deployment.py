"""The code location of the test Dagster deployment the graphql runner drives.

The demo and the runner contract's job, with dagster_airflow's IO manager bound as io_manager:
what a deployment must have for the graphql runner. The storage comes from each run's config.
``retried`` has an op that Dagster retries (its RetryPolicy) and that fails on every attempt.
"""

import dagster as dg

from dagster_airflow.testing.contract_job import contract, produce
from dagster_airflow.worker.io_manager import intermediate_io_manager_from_config
from examples.demo import demo_pipeline


@dg.job(resource_defs={"io_manager": dg.FilesystemIOManager()})
def unbound():
    """A job that binds another IO manager: the graphql runner cannot run it."""
    produce()


@dg.op(retry_policy=dg.RetryPolicy(max_retries=2, delay=0.1))
def always_fails(context: dg.OpExecutionContext) -> int:
    raise ValueError(f"always_fails fails on attempt {context.retry_number}")


@dg.job
def retried():
    always_fails()


defs = dg.Definitions(
    jobs=[demo_pipeline, contract, unbound, retried],
    resources={"io_manager": intermediate_io_manager_from_config},
    # One step per run: a subprocess per step (the default executor) would only add start-up.
    executor=dg.in_process_executor,
)
