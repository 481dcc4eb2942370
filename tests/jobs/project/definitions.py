"""The project's code location: `dagster-airflow scaffold --all -f definitions.py` (this file).

Each module of the package contributes its own `defs`; this file merges them, so a new part is
one import and one entry below.
"""

import dagster as dg

PARTS: list[dg.Definitions] = []

defs = dg.Definitions.merge(*PARTS) if PARTS else dg.Definitions()
