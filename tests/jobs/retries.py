"""Jobs that retry in every way Dagster offers, with hooks that count what fired.

Each op fails while ``context.retry_number`` is below its ``fails`` count, so an attempt's outcome
is the same under Dagster and under Airflow, and writes one line per attempt and per hook to the
file the ``record`` resource names: the record a test compares.
"""

from pathlib import Path

import dagster as dg


class Record(dg.ConfigurableResource):
    """Where attempts and hooks append their lines (one file for a whole run)."""

    path: str

    def write(self, line: str) -> None:
        with Path(self.path).open("a") as stream:
            stream.write(line + "\n")


@dg.success_hook(required_resource_keys={"record"})
def record_success(context: dg.HookContext) -> None:
    context.resources.record.write(f"success_hook {context.op.name}")


@dg.failure_hook(required_resource_keys={"record"})
def record_failure(context: dg.HookContext) -> None:
    context.resources.record.write(f"failure_hook {context.op.name}")


def _attempt(context: dg.OpExecutionContext, record: Record, fails: int) -> int:
    record.write(f"attempt {context.op.name} {context.retry_number}")
    if context.retry_number < fails:
        raise ValueError(f"{context.op.name} fails on attempt {context.retry_number}")
    return context.retry_number


@dg.op(retry_policy=dg.RetryPolicy(max_retries=3, delay=0.2, backoff=dg.Backoff.EXPONENTIAL))
def flaky_twice(context: dg.OpExecutionContext, record: Record) -> int:
    return _attempt(context, record, fails=2)


@dg.op
def flaky_once(context: dg.OpExecutionContext, record: Record) -> int:
    return _attempt(context, record, fails=1)


@dg.op
def job_policy_op(context: dg.OpExecutionContext, record: Record) -> int:
    return _attempt(context, record, fails=1)


@dg.op
def always_fails(context: dg.OpExecutionContext, record: Record) -> int:
    return _attempt(context, record, fails=99)


@dg.op
def after_failure(context: dg.OpExecutionContext, record: Record, value: int) -> int:
    return _attempt(context, record, fails=0) + value


@dg.op(retry_policy=dg.RetryPolicy(max_retries=2, delay=0.1))
def refuses_retry(context: dg.OpExecutionContext, record: Record) -> int:
    record.write(f"attempt {context.op.name} {context.retry_number}")
    raise dg.Failure("not worth retrying", allow_retries=False)


@dg.op
def steady(context: dg.OpExecutionContext, record: Record, a: int, b: int, c: int) -> int:
    return _attempt(context, record, fails=0) + a + b + c


@dg.job(
    op_retry_policy=dg.RetryPolicy(max_retries=1, delay=0.1, backoff=dg.Backoff.LINEAR),
    hooks={record_success, record_failure},
)
def retry_policies():
    """Every place a RetryPolicy can come from: the op, the invocation, the job."""
    jittered = dg.RetryPolicy(max_retries=2, delay=0.3, jitter=dg.Jitter.FULL)
    once = flaky_once.with_retry_policy(jittered)()
    steady(flaky_twice(), once, job_policy_op())
    after_failure(always_fails())
    refuses_retry()


@dg.op
def requests_retry(context: dg.OpExecutionContext, record: Record) -> int:
    record.write(f"attempt {context.op.name} {context.retry_number}")
    if context.retry_number < 2:
        raise dg.RetryRequested(max_retries=2, seconds_to_wait=0.2)
    return context.retry_number


@dg.op
def fails_without_policy(context: dg.OpExecutionContext, record: Record) -> int:
    return _attempt(context, record, fails=99)


@dg.job(hooks={record_success, record_failure})
def retry_requested():
    """Ops with no policy: one asks for retries itself, one fails and is not retried."""
    requests_retry()
    fails_without_policy()


@dg.asset(retry_policy=dg.RetryPolicy(max_retries=4, delay=2))
def own_policy_asset() -> int:
    return 1


@dg.asset
def job_policy_asset(own_policy_asset: int) -> int:
    return own_policy_asset + 1


asset_retries = dg.define_asset_job(
    "asset_retries",
    selection=[own_policy_asset, job_policy_asset],
    op_retry_policy=dg.RetryPolicy(max_retries=1, delay=30, backoff=dg.Backoff.EXPONENTIAL),
)

defs = dg.Definitions(
    assets=[own_policy_asset, job_policy_asset],
    jobs=[retry_policies, retry_requested, asset_retries],
    resources={"record": Record.configure_at_launch()},
)
