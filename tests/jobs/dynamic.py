"""Dynamic outputs, in the shapes Dagster's docs teach: a chain of .map() over a graph of two ops
and .collect(), a second dynamic output with a single map, zero keys, an optional dynamic output
that yields nothing, and a mapped op that fails its first attempt for one key."""

from pathlib import Path

import dagster as dg


@dg.op(out=dg.DynamicOut())
def pieces():
    # Yielded out of sorted order: the collect must read them in Dagster's order, not a listing's.
    for name in ["b", "a"]:
        yield dg.DynamicOutput(name, mapping_key=f"piece_{name}")


@dg.op(config_schema={"marker_dir": str}, retry_policy=dg.RetryPolicy(max_retries=1))
def flaky_upper(context: dg.OpExecutionContext, piece: str) -> str:
    """Fails the first attempt for piece_a; every attempt is counted in the marker directory."""
    marker_dir = Path(context.op_config["marker_dir"])
    key = context.get_mapping_key()
    with (marker_dir / f"attempts_{key}").open("a") as stream:
        stream.write("x")
    failed_once = marker_dir / f"failed_once_{key}"
    if key == "piece_a" and not failed_once.exists():
        failed_once.write_text("")
        raise ValueError("piece_a fails its first attempt")
    return piece.upper()


@dg.op
def exclaim(text: str) -> str:
    return text + "!"


@dg.op
def double(text: str) -> str:
    return text * 2


@dg.graph
def decorate(text: str) -> str:
    return double(exclaim(text))


@dg.op
def join(parts: list[str]) -> str:
    return ",".join(parts)


@dg.op(out=dg.DynamicOut())
def numbers():
    for n in [3, 1]:
        yield dg.DynamicOutput(n, mapping_key=f"n{n}")


@dg.op
def square(n: int) -> int:
    return n * n


@dg.op
def total(values: list[int]) -> int:
    return sum(values)


@dg.op(out=dg.DynamicOut())
def no_pieces():
    yield from ()


@dg.op(out=dg.DynamicOut(is_required=False))
def maybe_pieces():
    yield from ()


@dg.job
def dynamic():
    join(pieces().map(flaky_upper).map(decorate).collect())
    total(numbers().map(square).collect())
    empty = no_pieces().map(exclaim.alias("exclaim_none")).map(double.alias("double_none"))
    join.alias("join_none")(empty.collect())
    join.alias("join_maybe")(maybe_pieces().map(exclaim.alias("exclaim_maybe")).collect())


@dg.op(out={"evens": dg.DynamicOut(), "odds": dg.DynamicOut()})
def split():
    for n in range(4):
        yield dg.DynamicOutput(n, output_name="odds" if n % 2 else "evens", mapping_key=f"n{n}")


@dg.job
def two_dynamic_outputs():
    """Airflow maps over the one list a task returns: two mapped DynamicOuts of one op are
    refused."""
    evens, odds = split()
    total.alias("total_evens")(evens.map(square.alias("square_evens")).collect())
    total.alias("total_odds")(odds.map(square.alias("square_odds")).collect())


defs = dg.Definitions(jobs=[dynamic, two_dynamic_outputs])
