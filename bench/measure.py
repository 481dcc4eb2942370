"""Timing helpers: every result is a ratio of medians measured side by side in one run."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

from dagster_airflow.testing.airflow_home import AirflowHome

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SCRATCH = ROOT / ".bench"


@attrs.frozen
class Row:
    """One line of the table: our figure against its baseline."""

    benchmark: str
    ours: float
    baseline: float
    unit: str
    target: str  # e.g. "<= 1.2"
    baseline_name: str
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("inf")

    @property
    def met(self) -> bool | None:
        if not self.target:
            return None
        op, limit = self.target.split()
        return self.ratio <= float(limit) if op == "<=" else self.ratio >= float(limit)


def wall(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(args: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}")
    return done


def dagster_job_execute(job_file, job_name: str, env: dict, cwd, config=None) -> None:
    """`dagster job execute -f FILE -j JOB [-c CONFIG]`: Dagster's own run of a job, the
    baseline."""
    command = [str(BIN / "dagster"), "job", "execute", "-f", str(job_file), "-j", job_name]
    run([*command, *(["-c", str(config)] if config else [])], env=env, cwd=cwd)


def paired_medians(
    ours: Callable[[], float], baseline: Callable[[], float], repeats: int
) -> tuple[float, float]:
    """Median of each, the two measured alternately so both see the same machine load."""
    a, b = [], []
    for _ in range(repeats):
        a.append(ours())
        b.append(baseline())
    return statistics.median(a), statistics.median(b)


def print_table(rows: Sequence[Row]) -> None:
    header = f"{'benchmark':<44} {'ours':>9} {'baseline':>9} {'ratio':>6} {'target':>7}  result"
    print(header)
    print("-" * len(header))
    for row in rows:
        verdict = {True: "met", False: "MISSED", None: ""}[row.met]
        print(
            f"{row.benchmark:<44} {row.ours:>8.3f}{row.unit:<1} {row.baseline:>8.3f}{row.unit:<1}"
            f" {row.ratio:>6.2f} {row.target:>7}  {verdict}"
        )
        print(f"{'':<4}baseline: {row.baseline_name}" + (f"; {row.note}" if row.note else ""))


def airflow_with_job(
    folder: Path, job_file: Path, job_name: str, *runner_options: str
) -> tuple[AirflowHome, dict]:
    """An Airflow home in ``folder`` with the job scaffolded into its DAGs folder (filesystem
    storage in ``folder``, each ``NAME=VALUE`` of ``runner_options`` a runner option) and its
    database migrated; and the environment of a Dagster home beside it, for
    `dagster job execute` of the same job: (home, dagster_env)."""
    home = AirflowHome(folder / "airflow")
    command = [str(BIN / "dagster-airflow"), "scaffold", job_name, "-f", str(job_file)]
    command += ["--storage-option", f"base_dir={folder / 'storage'}", "--install"]
    for option in runner_options:
        command += ["--runner-option", option]
    run(command, env=home.env, cwd=folder)
    home.migrate()
    dagster_home = folder / "dagster_home"
    dagster_home.mkdir(exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home, {**os.environ, "DAGSTER_HOME": str(dagster_home)}
