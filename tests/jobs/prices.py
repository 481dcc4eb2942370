"""A job with one step that succeeds and one that fails with a chained cause, for the browser
test of the Airflow UI's Dagster step view."""

import dagster as dg


@dg.op
def load_prices(context: dg.OpExecutionContext) -> dict:
    context.log.info("loaded 3 prices")
    return {"apple": 1.25, "pear": 0.8, "plum": 2.5}


@dg.op
def parse_rates(context: dg.OpExecutionContext, prices: dict) -> dict:
    context.log.info("parsing the exchange rates")
    rates = {"EUR": 1.0}
    try:
        return {name: price * rates["USD"] for name, price in prices.items()}
    except KeyError as exc:
        raise ValueError("no exchange rate for the prices' currency") from exc


@dg.job
def prices():
    parse_rates(load_prices())
