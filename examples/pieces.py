"""Dynamic outputs, as Dagster's docs teach them: split the work into pieces, compute each piece,
then merge the results. Under Airflow, compute_piece is a mapped task: one task instance a piece."""

import dagster as dg


@dg.op(out=dg.DynamicOut())
def split_into_pieces():
    for n in range(1, 4):
        yield dg.DynamicOutput(n, mapping_key=f"piece_{n}")


@dg.op
def compute_piece(piece: int) -> int:
    return piece * piece


@dg.op
def merge_and_analyze(results: list[int]) -> int:
    return sum(results)


@dg.job
def pieces():
    merge_and_analyze(split_into_pieces().map(compute_piece).collect())
