"""The task log a test hands a runner, read back through a handler the test kit owns.

pytest's ``caplog`` listens on the root logger, and the first import of Airflow's configuration in
a process (reading a connection, masking a secret, pushing a link) replaces the root logger's
handlers with Airflow's own. A check of ``caplog.text`` then depends on which tests ran before.
``TaskLog`` puts its handler on the very logger it hands the runner, so what reached the task log
is readable whatever Airflow's logging setup and whatever ran before.

    with TaskLog() as task_log:
        result = runner.run(request, {}, task_log.logger)
    assert "Stored output 'result'" in task_log.text
"""

from __future__ import annotations

import logging
import threading
import uuid


class TaskLog(logging.Handler):
    """A logger of its own name, and every record it received from ``level`` up."""

    def __init__(self, name: str | None = None, level: int = logging.INFO) -> None:
        super().__init__(logging.DEBUG)
        self.logger = logging.getLogger(name or f"dagster_airflow.task_log.{uuid.uuid4().hex}")
        self.level_seen = level
        self.records: list[logging.LogRecord] = []
        self._changed = threading.Condition()

    def __enter__(self) -> TaskLog:
        self.logger.addHandler(self)
        self.logger.setLevel(self.level_seen)
        # Airflow's dictConfig may disable loggers that existed before it ran; this one must hear.
        self.logger.disabled = False
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.logger.removeHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        with self._changed:
            self.records.append(record)
            self._changed.notify_all()

    @property
    def messages(self) -> list[str]:
        with self._changed:
            return [record.getMessage() for record in self.records]

    @property
    def text(self) -> str:
        """Every message received, one a line (a message may span lines)."""
        return "\n".join(self.messages)

    def wait_for(self, text: str, timeout: float) -> bool:
        """Wait until a message containing ``text`` arrives; False when ``timeout`` passed."""
        with self._changed:
            return self._changed.wait_for(
                lambda: any(text in record.getMessage() for record in self.records), timeout
            )
