"""A job whose op config reads variables of every source type through `{env: NAME}` in its run
config, and a resource that reads one through `dg.EnvVar` (see RUN_CONFIG)."""

import dagster as dg


class Api(dg.ConfigurableResource):
    token: str


@dg.op(config_schema={"port": dg.IntSource, "verbose": dg.BoolSource, "name": dg.StringSource})
def configured(context: dg.OpExecutionContext, api: Api) -> str:
    config = context.op_config
    return f"{config['name']}:{config['port']}:{config['verbose']}:{len(api.token)}"


@dg.job
def env_config_job():
    configured()


RUN_CONFIG = {
    "ops": {
        "configured": {
            "config": {"port": {"env": "DB_PORT"}, "verbose": {"env": "VERBOSE"}, "name": "db"}
        }
    }
}

defs = dg.Definitions(jobs=[env_config_job], resources={"api": Api(token=dg.EnvVar("API_TOKEN"))})
