"""Step runners: where an Airflow task runs its Dagster step (a process, a container ...)."""
