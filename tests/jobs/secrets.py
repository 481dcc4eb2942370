"""A job whose ops say the secrets they were handed in every way an op can: the worker must
redact each. ``leak`` logs, prints, writes to its file descriptors, starts a process that
echoes it, puts it in an output and its metadata; ``fail`` raises an error that quotes it."""

import json
import logging
import os
import subprocess
import sys

import dagster as dg

SECRET_VARIABLES = ("DB_PASSWORD", "WAREHOUSE_LOGIN")


def _secrets() -> list[str]:
    return [os.environ[name] for name in SECRET_VARIABLES if os.environ.get(name)]


@dg.op
def leak(context: dg.OpExecutionContext):
    for secret in _secrets():
        context.log.info(f"connecting with {secret}")
        context.log.warning(f"as JSON: {json.dumps({'password': secret})}")
        context.log.info(f"as a repr: { ({'password': secret})!r} and {secret.encode()!r}")
        print(f"printed: {secret}")
        print(f"printed to stderr: {secret!r}", file=sys.stderr, flush=True)
        logging.getLogger("user_code").warning("through logging: %s", secret)
        subprocess.run([sys.executable, "-c", "import sys; print(sys.argv[1])", secret], check=True)
        os.write(1, f"straight to the descriptor: {secret}\n".encode())
    password = os.environ["DB_PASSWORD"]
    dsn = f"postgres://user:{password}@db/warehouse"
    yield dg.Output({"dsn": dsn, "note": "x" * 90 + password}, metadata={"dsn": dsn})


@dg.op
def fail(leak: dict) -> None:
    raise RuntimeError(f"cannot connect to {leak['dsn']!r} with {os.environ['DB_PASSWORD']}")


@dg.job
def secrets_job():
    fail(leak())


defs = dg.Definitions(jobs=[secrets_job])
