"""An Airflow connection as plain data (the wire: stdlib and attrs, used on both sides).

Every storage and runner reads a connection as this one frozen ``Connection``, its extra parsed
once, here: the operator's lookup (dagster_airflow.task.context.connection), the lookup outside
a task (dagster_airflow.task.connections) and a plain dict (a test, a storage written before
this type) all come through ``Connection.parse``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from dagster_airflow.errors import ConfigurationError

FIELDS = ("conn_type", "host", "port", "login", "password", "schema", "extra")


def parse_extra(extra: Any, conn_id: str | None) -> dict[str, Any]:
    """A connection's extra (JSON text, a mapping, or nothing) as a dict; one sentence when it
    is not a JSON object."""
    if extra in (None, ""):
        return {}
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except ValueError:
            extra = None
    if not isinstance(extra, Mapping):
        name = f"Airflow connection {conn_id!r}" if conn_id else "the connection"
        raise ConfigurationError(
            f'the extra of {name} is not a JSON object; write it as {{"region_name": "eu-west-1"}}.'
        )
    return dict(extra)


@attrs.frozen
class Connection:
    """An Airflow connection: its fields, and its extra as a dict."""

    conn_id: str | None = None
    conn_type: str | None = None
    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    schema: str | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @classmethod
    def parse(cls, value: Any, conn_id: str | None = None) -> Connection | None:
        """``value`` (a Connection, a plain dict with the extra as JSON text or a mapping, or an
        Airflow connection object) as a Connection; None stays None."""
        if value is None or isinstance(value, Connection):
            return value
        if isinstance(value, Mapping):
            fields = {name: value.get(name) for name in FIELDS}
        else:  # Airflow's own (the SDK's in a task, the model's outside one): its raw extra
            fields = {name: getattr(value, name, None) for name in FIELDS}
            conn_id = conn_id or getattr(value, "conn_id", None)
        fields["extra"] = parse_extra(fields["extra"], conn_id)
        return cls(conn_id=conn_id, **fields)

    def get(self, name: str, default: Any = None) -> Any:
        """A field by name, as the plain dict of earlier versions was read: conn.get("login")."""
        value = getattr(self, name, None) if name in FIELDS else None
        return default if value is None else value

    def __getitem__(self, name: str) -> Any:
        if name not in FIELDS:
            raise KeyError(name)
        return getattr(self, name)
