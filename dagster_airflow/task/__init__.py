"""The Airflow worker: what the operator resolves, binds and raises (the task's run context, its
outcome, Airflow connections). Imports Airflow inside functions, never Dagster."""
