"""A throwaway Airflow 3 installation on SQLite, driven through its own CLI.

Used by the test suite, `make demo` and the benchmarks: install a DAG file, run it with
`airflow dags test` (every task in one process, no scheduler), then read what a user would see:
the task log, each task's state, each task's XCom.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import weakref
from pathlib import Path

import attrs

from dagster_airflow.testing.warm_command import WarmCommand, read_at_import

logger = logging.getLogger(__name__)


@attrs.frozen
class DagRunResult:
    dag_id: str
    run_id: str | None  # Airflow's run id of the newest run
    returncode: int
    output: str  # what `airflow dags test` printed: the task logs, in order
    states: dict[str, str]  # task_id -> state of the newest run
    xcoms: dict[str, object]  # task_id -> return value of the newest run

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0

    def task_log(self, task_id: str) -> str:
        """The lines `dags test` printed while the task ran."""
        start = f"[DAG TEST] starting task_id={task_id} "
        end = f"[DAG TEST] end task task_id={task_id} "
        lines, inside = [], False
        for line in self.output.splitlines():
            if start in line:
                inside = True
            if inside:
                lines.append(line)
            if end in line:
                inside = False
        return "\n".join(lines)


@attrs.frozen
class TaskInstanceRow:
    """One task instance of a DAG run, as Airflow's database holds it."""

    task_id: str
    map_index: int  # -1 for a task that is not mapped (or mapped over nothing)
    state: str | None
    try_number: int  # 0 for a task that never ran (skipped or upstream_failed by Airflow)
    rendered_map_index: str | None  # what the UI shows for a map index (map_index_template)


class AirflowHome:
    """An AIRFLOW_HOME in a directory of its own, with its database migrated on first use."""

    def __init__(
        self, path: Path, python: str = sys.executable, env: dict | None = None, warm: bool = True
    ) -> None:
        self.path = Path(path)
        self.python = python
        # Commands run in forks of one process that imported Airflow (testing/warm_command.py),
        # started at the first command; False: each is a fresh `airflow` process.
        self.warm = warm
        self._warm: WarmCommand | None = None
        self.dags_folder = self.path / "dags"
        self.dags_folder.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.path),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__PARALLELISM": "2",
            **(env or {}),
        }
        self._migrated = (self.path / "airflow.db").exists()

    def airflow(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """`airflow <args>` with this home's environment: in a fork of the warm server when its
        environment allows (see warm_command.py), else as a fresh process."""
        done = self._run_warm(list(args), timeout)
        if done is not None:
            return done
        bin_dir = Path(self.python).parent
        return subprocess.run(
            [str(bin_dir / "airflow"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def _run_warm(self, args: list[str], timeout: float) -> subprocess.CompletedProcess | None:
        if not self.warm:
            return None
        if self._warm is None:
            try:
                self._warm = WarmCommand(
                    self.python, self.env, self.path / "warm-airflow.log", "airflow", read_at_import
                )
                # Stopped with this home (or at exit), not left to the interpreter's teardown.
                self._stop_warm = weakref.finalize(self, self._warm.close)
            except (OSError, RuntimeError, TimeoutError) as exc:
                logger.warning("No warm Airflow for %s (%s): each command starts cold", self, exc)
                self.warm = False
                return None
        if not self._warm.same_packages():
            self.close()  # packages changed: a new server for the next command
            return None
        if not self._warm.accepts(self.env):
            return None
        return self._warm.run(args, self.env, timeout)

    def close(self) -> None:
        """Stop the warm server, if one was started (it also ends with this process)."""
        if self._warm is not None:
            self._stop_warm()  # a finalizer runs once: at most one close
            self._warm = None

    def __repr__(self) -> str:
        return f"AirflowHome({str(self.path)!r})"

    def migrate(self) -> None:
        if self._migrated:
            return
        done = self.airflow("db", "migrate")
        if done.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{done.stdout}\n{done.stderr}")
        self._migrated = True

    def install(self, text: str, filename: str) -> Path:
        path = self.dags_folder / filename
        path.write_text(text)
        return path

    def add_connection(self, conn_id: str, uri: str) -> None:
        """Define a connection the way a deployment would, through the environment."""
        self.env[f"AIRFLOW_CONN_{conn_id.upper()}"] = uri

    def dags_test(
        self,
        dag_id: str,
        dag_file: Path | None = None,
        timeout: float = 900,
        conf: dict | None = None,
        logical_date: str | None = None,
    ):
        """Run the DAG once with `airflow dags test` (with a conf and a logical date, as
        `--conf` and the LOGICAL_DATE argument give them) and collect what happened.

        Airflow parses ``dag_file`` only; by default ``<dags folder>/<dag_id>.py`` when that
        file names the DAG, else every file of the folder (each parsed and written to the
        database again: seconds once a home holds dozens)."""
        self.migrate()
        dag_file = dag_file or self._file_naming(dag_id)
        args = ["dags", "test", dag_id]
        if logical_date is not None:
            args.append(logical_date)
        if conf is not None:
            args += ["--conf", json.dumps(conf)]
        if dag_file is not None:
            args += ["--dagfile-path", str(dag_file)]
        done = self.airflow(*args, timeout=timeout)
        run_id, states, xcoms = self._newest_run(dag_id)
        output = done.stdout + done.stderr
        return DagRunResult(dag_id, run_id, done.returncode, output, states, xcoms)

    def _file_naming(self, dag_id: str) -> Path | None:
        path = self.dags_folder / f"{dag_id}.py"
        if not path.is_file():
            return None
        text = path.read_text()
        return path if f'"{dag_id}"' in text or f"'{dag_id}'" in text else None

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str) -> object:
        """An XCom of one task instance, as Airflow stored it (None when there is none)."""
        with sqlite3.connect(self.path / "airflow.db") as db:
            row = db.execute(
                "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? "
                "AND key = ?",
                (dag_id, run_id, task_id, key),
            ).fetchone()
        return json.loads(row[0]) if row and isinstance(row[0], str | bytes) else None

    def task_instances(self, dag_id: str, run_id: str) -> list[TaskInstanceRow]:
        """Every task instance of one DAG run, mapped ones per map index."""
        with sqlite3.connect(self.path / "airflow.db") as db:
            rows = db.execute(
                "SELECT task_id, map_index, state, try_number, rendered_map_index "
                "FROM task_instance WHERE dag_id = ? AND run_id = ? ORDER BY task_id, map_index",
                (dag_id, run_id),
            ).fetchall()
        return [TaskInstanceRow(*row) for row in rows]

    def _newest_run(self, dag_id: str) -> tuple[str | None, dict[str, str], dict[str, object]]:
        with sqlite3.connect(self.path / "airflow.db") as db:
            row = db.execute(
                "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
            ).fetchone()
            if row is None:
                return None, {}, {}
            run_id = row[0]
            states = dict(
                db.execute(
                    "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
                    (dag_id, run_id),
                ).fetchall()
            )
            xcoms = {
                task_id: json.loads(value) if isinstance(value, str | bytes) else value
                for task_id, value in db.execute(
                    "SELECT task_id, value FROM xcom WHERE dag_id = ? AND run_id = ? "
                    "AND key = 'return_value'",
                    (dag_id, run_id),
                ).fetchall()
            }
        return run_id, states, xcoms
