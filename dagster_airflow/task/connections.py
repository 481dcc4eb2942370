"""Airflow connections outside a task, as Airflow resolves them without a task context.

What `dagster-airflow results` reads a storage's credentials with, on a machine that may or may
not have Airflow. With Airflow installed, Airflow's own lookup answers
(`airflow.models.connection.Connection.get_connection_from_secrets`: a configured secrets
backend, then the ``AIRFLOW_CONN_*`` environment variables, then the metastore). Without it, the
``AIRFLOW_CONN_{CONN_ID}`` environment variable is read here, in either of Airflow's two forms (a
URI, or a JSON object), as Airflow's environment backend reads it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from dagster_airflow.connection import FIELDS, Connection, parse_extra
from dagster_airflow.errors import ConfigurationError

ENV_PREFIX = "AIRFLOW_CONN_"


def get_connection(conn_id: str) -> Connection | None:
    """The connection (what storages' ``credentials_env`` read), or None when no backend
    defines it."""
    if importlib.util.find_spec("airflow") is not None:
        return _from_airflow(conn_id)
    return Connection.parse(from_environment(conn_id), conn_id)


def _from_airflow(conn_id: str) -> Connection | None:
    # Only here: importing Airflow takes a second and configures its logging, whose lines
    # (such as "empty cryptography key") go to stderr, never into a command's output.
    with contextlib.redirect_stdout(sys.stderr):
        from airflow.models.connection import Connection as AirflowConnection

        from dagster_airflow.task.airflow_compat import AirflowNotFoundException

        try:
            conn = AirflowConnection.get_connection_from_secrets(conn_id)
        except AirflowNotFoundException:
            return None
    return Connection.parse(conn, conn_id)


def from_environment(conn_id: str) -> dict[str, Any] | None:
    """``AIRFLOW_CONN_{CONN_ID}`` read as Airflow's EnvironmentVariablesBackend reads it."""
    name = ENV_PREFIX + conn_id.upper()
    value = os.environ.get(name)
    if not value:
        return None
    if value.lstrip().startswith("{"):
        try:
            data = json.loads(value)
        except ValueError as exc:
            raise ConfigurationError(
                f"{name} is neither a connection URI nor valid JSON ({exc}); write it as "
                "aws://LOGIN:PASSWORD@/?region_name=... or as a JSON object."
            ) from None
        conn = {field: data.get(field) for field in FIELDS}
        conn["extra"] = parse_extra(data.get("extra"), conn_id)
        return conn
    return parse_uri(value, name)


def parse_uri(uri: str, name: str = "the connection") -> dict[str, Any]:
    """An Airflow connection URI as Airflow's Connection(uri=...) parses it."""
    if uri.count("://") > 2 or "://" not in uri:
        raise ConfigurationError(
            f"{name} {uri[:20] + '...'!r} is not a connection URI; write it as "
            "conn-type://login:password@host:port/schema?extra=value."
        )
    scheme, _, rest = uri.partition("://")
    protocol = None
    if "://" in rest:  # a host with its own protocol: http://https://host
        protocol, _, rest = rest.partition("://")
    parts = urlsplit("//" + rest)
    host = unquote(parts.hostname or "")
    if "/" in host:  # a quoted host with a path: Airflow keeps the netloc as it is
        host = unquote(parts.netloc.rsplit("@", 1)[-1].split(":", 1)[0])
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if "__extra__" in query:
        extra = parse_extra(query["__extra__"], None)
    else:
        extra = {}
        for key, value in query.items():
            try:
                extra[key] = json.loads(value) if value else value
            except ValueError:
                extra[key] = value
    conn_type = "postgres" if scheme == "postgresql" else scheme.replace("-", "_")
    return {
        "conn_type": conn_type,
        "host": f"{protocol}://{host}" if protocol and host else host,
        "port": parts.port,
        "login": unquote(parts.username) if parts.username else parts.username,
        "password": unquote(parts.password) if parts.password else parts.password,
        "schema": unquote(parts.path[1:]) if parts.path[1:] else parts.path[1:],
        "extra": extra,
    }
