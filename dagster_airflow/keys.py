"""Key safety: a run id is a UUID, and a storage key never leaves its storage's root.

A run id reaches the storage from a step request (its JSON may come from a file), or from a
Dagster run's tag (anyone who can launch a run in the Dagster UI can set one). It becomes the
first part of every key, so a run id of ``../elsewhere`` would write outside ``base_dir`` (or the
S3 prefix). Every storage checks every key it is handed with ``check_key``.
"""

from __future__ import annotations

import re
import uuid

from dagster_airflow.errors import ConfigurationError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_run_id(value: object, where: str) -> str:
    """The run id when it is a UUID in its canonical form (what dagster_run_id derives), else a
    ConfigurationError naming where it came from."""
    if isinstance(value, str):
        try:
            if str(uuid.UUID(value)) == value:
                return value
        except ValueError:
            pass
    raise ConfigurationError(
        f"the run id {value!r} from {where} is not a UUID such as "
        "'3f2b1c4d-5e6f-5a7b-8c9d-0e1f2a3b4c5d'; a run id is derived from the Airflow run, so "
        "remove whatever set it."
    )


def check_key(key: object) -> str:
    """The key when it is relative, with no empty, '.' or '..' part and no control character."""
    problem = None
    if not isinstance(key, str) or not key:
        problem = "is not a non-empty string"
    elif _CONTROL.search(key):
        problem = "holds a control character"
    elif key.startswith("/") or "\\" in key:
        problem = "is absolute or holds a backslash"
    elif any(part in ("", ".", "..") for part in key.split("/")):
        problem = "has an empty, '.' or '..' part"
    if problem:
        raise ConfigurationError(
            f"the storage key {key!r} {problem}, so it could name an object outside the "
            "storage; keys are run_id/step_key/output_name."
        )
    return key
