"""The project's own test harness (not installed with dagster-airflow): real deployments,
podman, a browser, moto and emulator servers, a Dagster webserver, an ECS agent. The kit shipped
for plugin authors and users is dagster_airflow.testing."""
