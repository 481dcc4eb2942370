"""The warm step server: Dagster and a code location loaded once, one forked process per step.

- ``protocol``: where servers live (a per-user runtime directory), how they are named, the
  framing of messages on their Unix socket, and how to list and stop them (stdlib only).
- ``client``: what the subprocess runner uses to reach a server, starting one if need be.
- ``server``: the resident process (``python -m dagster_airflow.step_server.server``).

See docs/step-server.md.
"""
