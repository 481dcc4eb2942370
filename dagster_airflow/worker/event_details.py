"""What a StepEvent records of a Dagster materialization, asset check or hook (Dagster side).

The worker writes these fields into the step's event log; the comparison kit reads Dagster's own
run through the same function, so both runs are described alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

HOOK_EVENTS = ("HOOK_COMPLETED", "HOOK_SKIPPED", "HOOK_ERRORED")
DETAILED_EVENTS = ("ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION", *HOOK_EVENTS)

# Dagster names the hook only in its message: 'Finished the execution of hook "name" ...'.
_HOOK_NAME = re.compile(r'hook "([^"]+)"')


def json_safe_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Each metadata entry's value where JSON can hold it, else its text."""
    safe: dict[str, Any] = {}
    for key, entry in metadata.items():
        value = getattr(entry, "value", entry)
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            value = str(value)
        safe[str(key)] = value
    return safe


def event_details(event: Any) -> dict[str, Any]:
    """The StepEvent fields of a Dagster event of one of DETAILED_EVENTS ({} for the others)."""
    kind = event.event_type_value
    data = event.event_specific_data
    if kind == "ASSET_MATERIALIZATION":
        materialization = data.materialization
        return {
            "asset_key": materialization.asset_key.to_user_string(),
            "partition": materialization.partition,
            "metadata": json_safe_metadata(materialization.metadata),
        }
    if kind == "ASSET_CHECK_EVALUATION":
        return {
            "asset_key": data.asset_key.to_user_string(),
            "partition": data.partition,
            "check_name": data.check_name,
            "passed": data.passed,
            "severity": data.severity.value,
            "metadata": json_safe_metadata(data.metadata),
        }
    if kind in HOOK_EVENTS:
        found = _HOOK_NAME.search(event.message or "")
        return {"hook_name": found.group(1) if found else None}
    return {}
