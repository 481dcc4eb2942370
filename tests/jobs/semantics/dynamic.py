"""Dynamic outputs in the shapes of Dagster's docs, as independent branches of one job: chained
maps and a collect, a second dynamic output mapped over a graph of several ops, and a dynamic
output that yields no keys at all."""

import dagster as dg


@dg.op(out=dg.DynamicOut(str))
def pieces():
    for name in ("alpha", "beta"):
        yield dg.DynamicOutput(name, mapping_key=f"piece_{name}")


@dg.op
def upper(piece: str) -> str:
    return piece.upper()


@dg.op
def exclaim(piece: str) -> str:
    return f"{piece}!"


@dg.op
def join_pieces(parts: list[str]) -> str:
    return " ".join(parts)


@dg.op(out=dg.DynamicOut(int))
def numbers():
    for n in (3, 5):
        yield dg.DynamicOutput(n, mapping_key=f"n{n}")


@dg.op
def double(n: int) -> int:
    return 2 * n


@dg.op
def add_one(n: int) -> int:
    return n + 1


@dg.graph
def double_then_add(n: int) -> int:
    return add_one(double(n))


@dg.op
def total(values: list[int]) -> int:
    return sum(values)


@dg.op(out=dg.DynamicOut(str))
def no_pieces():
    yield from ()


@dg.op
def never_runs(piece: str) -> str:
    return piece


@dg.op
def count_pieces(parts: list[str]) -> int:
    return len(parts)


@dg.job
def dynamic_shapes():
    join_pieces(pieces().map(upper).map(exclaim).collect())
    total(numbers().map(double_then_add).collect())
    count_pieces(no_pieces().map(never_runs).collect())
