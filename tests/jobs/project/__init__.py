"""A Dagster project of the kind teams bring (issue 25): several jobs, schedules, a sensor,
resources that read secrets through EnvVar, pools. Each part lives in a module of its own; the
code location is `definitions.py`, which merges them, as a team's project does."""
