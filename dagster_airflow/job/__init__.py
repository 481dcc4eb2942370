"""The Dagster side: a code location's jobs, discovered and compiled into a step graph (with its
plan fingerprint), their params and partitions. Imports Dagster, never Airflow."""
