"""The developer's machine: render a job's DAG file, check it against the job, install it into
the dags folder, and read a run's results back. Never imports Airflow."""
