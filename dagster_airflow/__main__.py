import sys

from dagster_airflow.cli import main

sys.exit(main())
