"""The entry of a sensor tick's process (Dagster side): read the tick's request, evaluate the
sensor once with the cursor given, print the result as one marked JSON line, exit 0. A sensor
that raises is a result too (its error, one line), as Dagster's daemon records a failed tick."""

from __future__ import annotations

import json
import sys
import traceback

from dagster_airflow.errors import DagsterAirflowError
from dagster_airflow.model import CodeLocation
from dagster_airflow.sensor_tick import RESULT_MARK


def main(text: str) -> int:
    from dagster_airflow.job.sensors import evaluate_sensor

    try:
        request = json.loads(text)
        location = CodeLocation.from_dict(request["code_location"])
        result = evaluate_sensor(location, request["sensor_name"], request.get("cursor"))
    except DagsterAirflowError as exc:
        result = {"error": str(exc)}
    except (ValueError, KeyError, TypeError) as exc:
        result = {"error": f"the sensor tick's request is not valid ({exc!r})"}
    except Exception as exc:  # the user's sensor raised: Dagster wraps it, show its cause
        traceback.print_exc()
        root = exc
        while root.__cause__ is not None:
            root = root.__cause__
        result = {"error": f"the sensor raised {type(root).__name__}: {root}"}
    sys.stdout.write(RESULT_MARK + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()
    return 0
