"""The project's code location: `dagster-airflow scaffold --all -f definitions.py` (this file).

Each module of the package contributes its own `defs`; this file merges them, so a new part is
one import and one entry below.
"""

import dagster as dg

from tests.jobs.project import schedules, sensors, warehouse

PARTS: list[dg.Definitions] = [
    warehouse.defs,
    sensors.defs,
    schedules.defs,
]

defs = dg.Definitions.merge(*PARTS) if PARTS else dg.Definitions()
