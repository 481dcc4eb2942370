"""A job whose run config is mapped from a simpler schema (a pythonic Config), as Dagster's
docs teach config mapping."""

import dagster as dg


class GreetingConfig(dg.Config):
    name: str
    punctuation: str = "."


@dg.op
def greet(config: GreetingConfig) -> str:
    return f"Hello, {config.name}{config.punctuation}"


@dg.op
def shout(greeting: str) -> str:
    return greeting.upper()


class SimplifiedConfig(dg.Config):
    name: str


@dg.config_mapping
def simplified(config: SimplifiedConfig) -> dg.RunConfig:
    return dg.RunConfig(ops={"greet": GreetingConfig(name=config.name, punctuation="!")})


@dg.job(config=simplified)
def mapped_config():
    shout(greet())


RUN_CONFIG = {"name": "Airflow"}
