"""The 2019 README's demo_pipeline, for Dagster 1.13, with one fan-out and fan-in.

multiply_the_word -> count_letters ----------> summarize
                  \\-> reverse_word -> count_reversed /
"""

from collections import Counter

import dagster as dg


@dg.op(config_schema={"factor": int})
def multiply_the_word(context: dg.OpExecutionContext, word: str) -> str:
    context.log.info(f"Multiplying {word!r} by {context.op_config['factor']}")
    return word * context.op_config["factor"]


@dg.op
def count_letters(word: str) -> dict:
    return dict(Counter(word))


@dg.op
def reverse_word(word: str) -> str:
    return word[::-1]


@dg.op
def count_reversed(word: str) -> dict:
    return dict(Counter(word))


@dg.op
def summarize(context: dg.OpExecutionContext, counts: dict, reversed_counts: dict) -> dict:
    """The final output: the letter counts, checked against those of the reversed word."""
    if counts != reversed_counts:
        raise ValueError(f"counts differ: {counts} != {reversed_counts}")
    context.log.info(f"Letter counts: {counts}")
    return {"letters": counts, "total": sum(counts.values())}


@dg.job(description="The 2019 demo_pipeline: multiply a word, then count its letters.")
def demo_pipeline():
    word = multiply_the_word()
    summarize(count_letters(word), count_reversed(reverse_word(word)))


defs = dg.Definitions(jobs=[demo_pipeline])
