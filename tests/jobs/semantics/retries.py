"""Every way Dagster's docs retry an op, with success and failure hooks on retried ops.

Each op fails on its first attempts (``context.retry_number`` counts them) and then succeeds,
except ``always_fails``, which exhausts its retries. Delays are kept under a second.
"""

import dagster as dg


@dg.success_hook
def record_success(context: dg.HookContext) -> None:
    context.log.info(f"success hook for {context.op.name}")


@dg.failure_hook
def record_failure(context: dg.HookContext) -> None:
    context.log.info(f"failure hook for {context.op.name}")


def fail_until(context: dg.OpExecutionContext, attempts: int) -> int:
    """Fail the first ``attempts`` attempts; then return the retry number."""
    if context.retry_number < attempts:
        raise ValueError(f"attempt {context.retry_number + 1} of {context.op.name} fails")
    return context.retry_number


@dg.op(
    retry_policy=dg.RetryPolicy(
        max_retries=2, delay=0.2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    )
)
def decorated_policy(context: dg.OpExecutionContext) -> int:
    return fail_until(context, 2)


@dg.op
def with_policy(context: dg.OpExecutionContext) -> int:
    return fail_until(context, 1)


@dg.op
def job_policy(context: dg.OpExecutionContext) -> int:
    return fail_until(context, 1)


@dg.op
def requests_retry(context: dg.OpExecutionContext) -> int:
    if context.retry_number < 1:
        raise dg.RetryRequested(max_retries=2, seconds_to_wait=0.5)
    return context.retry_number


@dg.op(retry_policy=dg.RetryPolicy(max_retries=1, delay=0.1))
def always_fails(context: dg.OpExecutionContext) -> int:
    return fail_until(context, 10)


@dg.op
def after_failure(value: int) -> int:
    return value


@dg.op
def no_policy() -> str:
    return "ran once"


@dg.job(op_retry_policy=dg.RetryPolicy(max_retries=1, delay=0.1))
def retry_forms():
    decorated_policy.with_hooks({record_success, record_failure})()
    with_policy.with_retry_policy(dg.RetryPolicy(max_retries=1, delay=0.1))()
    job_policy()
    requests_retry()
    after_failure(always_fails.with_hooks({record_success, record_failure})())
    no_policy()
