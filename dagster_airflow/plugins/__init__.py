"""The extension points: pluggy hooks that register runners and storages."""

import pluggy

hookimpl = pluggy.HookimplMarker("dagster_airflow")

__all__ = ["hookimpl"]
