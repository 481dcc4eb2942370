"""Nested mapping (a map inside a mapped step): Dagster refuses it when the job is defined."""

import dagster as dg


@dg.op(out=dg.DynamicOut())
def pieces():
    yield dg.DynamicOutput(1, mapping_key="a")


@dg.op(out=dg.DynamicOut())
def sub_pieces(piece: int):
    yield dg.DynamicOutput(piece, mapping_key="x")


@dg.op
def work(n: int) -> int:
    return n


@dg.job
def nested():
    pieces().map(lambda p: sub_pieces(p).map(work))
