"""One job with the static shapes of Dagster's docs, each an independent branch: fan-in of ten,
fan-in over optional outputs, Nothing dependencies, a multi-output op, a nested graph with its
config, and a branch taken by an optional output."""

import dagster as dg


# Fan-in of ten: ten aliases of one op feed a single List input.
@dg.op
def return_one() -> int:
    return 1


@dg.op
def sum_fan_in(nums: list[int]) -> int:
    return sum(nums)


# Fan-in where some sources are optional outputs that were not produced.
@dg.op(out={"value": dg.Out(int, is_required=False)}, config_schema={"emit": bool, "value": int})
def maybe_value(context: dg.OpExecutionContext):
    if context.op_config["emit"]:
        yield dg.Output(context.op_config["value"], "value")


@dg.op
def sum_produced(values: list[int]) -> int:
    return sum(values)


# Nothing dependencies: order without data.
@dg.op
def create_table(context: dg.OpExecutionContext) -> None:
    context.log.info("table created")


@dg.op(ins={"start": dg.In(dg.Nothing)})
def fill_table() -> str:
    return "filled"


# A multi-output op.
@dg.op(out={"evens": dg.Out(list), "odds": dg.Out(list)})
def split_numbers():
    numbers = list(range(7))
    return [n for n in numbers if n % 2 == 0], [n for n in numbers if n % 2]


@dg.op
def count_items(items: list) -> int:
    return len(items)


@dg.op
def total_items(evens: list, odds: list) -> int:
    return sum(evens) + sum(odds)


# A nested graph whose ops take config, given under ops: {graph: {ops: {op: ...}}}.
@dg.op(config_schema={"word": str})
def pick_word(context: dg.OpExecutionContext) -> str:
    return context.op_config["word"]


@dg.op(config_schema={"times": int})
def repeat_word(context: dg.OpExecutionContext, word: str) -> str:
    return word * context.op_config["times"]


@dg.graph
def inner_words(word: str) -> str:
    return repeat_word(word)


@dg.graph
def outer_words() -> str:
    return inner_words(pick_word())


# Branching: an op takes one of two paths with optional outputs.
@dg.op(
    out={"positive": dg.Out(int, is_required=False), "negative": dg.Out(int, is_required=False)},
    config_schema={"number": int},
)
def branch(context: dg.OpExecutionContext):
    number = context.op_config["number"]
    if number >= 0:
        yield dg.Output(number, "positive")
    else:
        yield dg.Output(number, "negative")


@dg.op
def handle_positive(number: int) -> str:
    return f"{number} is positive"


@dg.op
def handle_negative(number: int) -> str:
    return f"{number} is negative"


@dg.job
def graph_shapes():
    sum_fan_in([return_one.alias(f"return_one_{i}")() for i in range(10)])
    sum_produced([maybe_value.alias(name)() for name in ("produced_a", "skipped_b", "produced_c")])
    fill_table(start=create_table())
    evens, odds = split_numbers()
    count_items(evens)
    total_items(evens, odds)
    outer_words()
    positive, negative = branch()
    handle_positive(positive)
    handle_negative(negative)


RUN_CONFIG = {
    "ops": {
        "produced_a": {"config": {"emit": True, "value": 3}},
        "skipped_b": {"config": {"emit": False, "value": 100}},
        "produced_c": {"config": {"emit": True, "value": 4}},
        "outer_words": {
            "ops": {
                "pick_word": {"config": {"word": "ab"}},
                "inner_words": {"ops": {"repeat_word": {"config": {"times": 3}}}},
            }
        },
        "branch": {"config": {"number": 5}},
    }
}
