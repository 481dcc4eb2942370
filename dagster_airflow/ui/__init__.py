"""The Airflow UI plugin of dagster-airflow (Airflow side): task links, `dagster-airflow install`.

Not to be confused with dagster_airflow.plugins, the pluggy hooks through which runners and
storages register.
"""
