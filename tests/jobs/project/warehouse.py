"""A resource that reads its password through `dg.EnvVar`, as Dagster's docs say to pass every
secret: the scaffold never needs the variable set, and the step gets it from Airflow
(`--env WAREHOUSE_PASSWORD='{{ conn.warehouse.password }}'`)."""

import hashlib

import dagster as dg


class Warehouse(dg.ConfigurableResource):
    """A warehouse client's settings; the password comes from the step's environment."""

    user: str
    password: str

    def fingerprint(self) -> str:
        """What a test may see of the password: its length and a hash, never the value."""
        digest = hashlib.sha256(self.password.encode()).hexdigest()[:12]
        return f"{len(self.password)}:{digest}"


@dg.op
def connect(warehouse: Warehouse) -> str:
    return warehouse.fingerprint()


@dg.op
def report(context: dg.OpExecutionContext, fingerprint: str) -> str:
    context.log.info(f"connected, password fingerprint {fingerprint}")
    return fingerprint


@dg.job
def warehouse_job():
    report(connect())


defs = dg.Definitions(
    jobs=[warehouse_job],
    resources={"warehouse": Warehouse(user="loader", password=dg.EnvVar("WAREHOUSE_PASSWORD"))},
)
