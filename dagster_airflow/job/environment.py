"""The environment variables a job reads through Dagster's config, found without reading them.

Dagster reads a variable where a config value is ``{"env": NAME}`` in a field of type
StringSource, IntSource or BoolSource: a resource's ``dg.EnvVar("NAME")`` is written so, and so
is ``{env: NAME}`` in run config. Validating the run config (what the scaffold does to plan the
job) reads each one and fails when it is not set. ``reading_environment`` records the names
instead and gives each field a placeholder of its type, so the scaffold never needs a secret
set on the machine that scaffolds.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

# A placeholder per source type: a value that post-processing of that type accepts.
_PLACEHOLDERS = {"StringSourceType": "", "IntSourceType": 0, "BoolSourceType": False}
_LOCK = threading.Lock()


@contextlib.contextmanager
def reading_environment() -> Iterator[list[str]]:
    """Within the block, config post-processing records every environment variable it would
    read (in the order read, each once) into the list it yields, and reads none."""
    from dagster_airflow.job.dagster_compat import config_source as source

    names: list[str] = []
    types = [source.StringSourceType, source.IntSourceType, source.BoolSourceType]

    def recording(original):
        def post_process(self, value):
            if not isinstance(value, dict):
                return original(self, value)
            name = value.get("env")
            if isinstance(name, str) and name not in names:
                names.append(name)
            return _PLACEHOLDERS[type(self).__name__]

        return post_process

    with _LOCK:
        originals = {cls: cls.__dict__["post_process"] for cls in types}
        try:
            for cls, original in originals.items():
                cls.post_process = recording(original)
            yield names
        finally:
            for cls, original in originals.items():
                cls.post_process = original
