"""Inside the step's process: execute one step (``execute.run_step``, the entry the CLI's
``execute-step`` and the step server call), its run state, events, previews and the IO manager.
Imports Dagster, never Airflow."""
