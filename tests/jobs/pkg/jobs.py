"""A code location loaded as a module (-m tests.jobs.pkg.jobs) or through a workspace."""

import dagster as dg


@dg.op
def extract() -> list:
    return [1, 2, 3]


@dg.op
def double(values: list) -> list:
    return [v * 2 for v in values]


@dg.op
def total(values: list) -> int:
    return sum(values)


@dg.op
def count(values: list) -> int:
    return len(values)


@dg.job
def numbers():
    values = double(extract())
    total(values)
    count(values)


@dg.job
def other():
    extract()


defs = dg.Definitions(jobs=[numbers, other])
