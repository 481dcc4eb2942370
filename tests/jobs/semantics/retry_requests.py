"""Ops without a RetryPolicy that ask Dagster for retries (RetryRequested), as Dagster's docs
show it, with hooks that fire on every attempt: one asks until its third attempt succeeds, one
asks more often than it allows and fails, one fails plainly (Dagster does not retry it) and its
downstream op never runs. The delays are kept under a second.
"""

import dagster as dg


@dg.success_hook
def record_success(context: dg.HookContext) -> None:
    context.log.info(f"success hook for {context.op.name}")


@dg.failure_hook
def record_failure(context: dg.HookContext) -> None:
    context.log.info(f"failure hook for {context.op.name}")


@dg.op
def asks_twice(context: dg.OpExecutionContext) -> int:
    if context.retry_number < 2:
        raise dg.RetryRequested(max_retries=3, seconds_to_wait=0.2)
    return context.retry_number


@dg.op
def asks_too_often(context: dg.OpExecutionContext) -> int:
    try:
        raise ConnectionError(f"attempt {context.retry_number + 1}: the service is busy")
    except ConnectionError as exc:
        raise dg.RetryRequested(max_retries=1) from exc


@dg.op
def plain_failure(context: dg.OpExecutionContext) -> int:
    raise ValueError(f"attempt {context.retry_number + 1} of plain_failure fails")


@dg.op
def after_failure(value: int) -> int:
    return value


@dg.op
def steady() -> str:
    return "ran once"


@dg.job(hooks={record_success, record_failure})
def retry_requests():
    asks_twice()
    asks_too_often()
    after_failure(plain_failure())
    steady()
