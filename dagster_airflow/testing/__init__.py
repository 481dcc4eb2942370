"""Helpers for testing DAGs and backends of dagster-airflow against a real Airflow."""
