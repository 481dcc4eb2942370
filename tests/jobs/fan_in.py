"""Fan-in inputs, as Dagster's docs teach them: a list of ten sources, and sources that were not
produced (optional outputs, skipped steps), a Nothing dependency among them."""

import dagster as dg


@dg.op
def return_one() -> int:
    return 1


@dg.op
def sum_fan_in(nums: list[int]) -> int:
    return sum(nums)


@dg.op(
    out={
        "one": dg.Out(int, is_required=False),
        "two": dg.Out(int, is_required=False),
        "three": dg.Out(int, is_required=False),
    }
)
def some_numbers():
    yield dg.Output(1, "one")
    yield dg.Output(3, "three")


@dg.op
def plus_ten(x: int) -> int:
    return x + 10


@dg.op(out=dg.Out(dg.Nothing))
def prepare() -> None:
    pass


@dg.op(ins={"after": dg.In(dg.Nothing)})
def report(total: int) -> str:
    return f"total {total}"


@dg.job
def fan_in():
    ten = sum_fan_in.alias("sum_ten")([return_one.alias(f"return_one_{i}")() for i in range(10)])
    one, two, three = some_numbers()
    skipped = plus_ten(two)  # 'two' is not produced: skipped
    skipped_too = plus_ten.alias("plus_ten_again")(skipped)  # downstream of a skipped step
    partial = sum_fan_in.alias("sum_partial")([one, two, three, skipped_too, ten])
    sum_fan_in.alias("sum_none")([two, skipped])  # no source produced: skipped, as in Dagster
    report(total=partial, after=prepare())


defs = dg.Definitions(jobs=[fan_in])
