"""`dagster-airflow check DAGS_FOLDER` (or a code location): which jobs have no DAG yet (new),
which DAGs run a job that is gone, and which DAGs drifted from their job. (Dagster side)

The folder's scaffolded DAG files are read as text (never imported) and grouped by the code
location their DEFAULT_ARGS name; each location is loaded once, its jobs listed as `scaffold
--all` lists them, and each file checked as `check DAG_FILE` checks it. One line per finding.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from dagster_airflow.errors import ConfigurationError, DagsterAirflowError
from dagster_airflow.model import CodeLocation
from dagster_airflow.scaffold.dag_file import SCAFFOLD_MARK, parse_dag_text


@attrs.frozen
class FolderCheck:
    """What `check` found in a dags folder: one line per finding, counted by kind."""

    lines: tuple[str, ...]
    new: int
    gone: int
    drifted: int
    matching: int  # DAG files that match their job

    @property
    def findings(self) -> int:
        return self.new + self.gone + self.drifted


def scaffolded_jobs(folder: Path) -> dict[CodeLocation, list[tuple[Path, str, str]]]:
    """The scaffolded job DAG files of a folder (at any depth), by their code location: each
    file with its DAG id and job name."""
    found: dict[CodeLocation, list[tuple[Path, str, str]]] = {}
    for path in sorted(folder.rglob("*.py")):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if SCAFFOLD_MARK not in text.partition("\n")[0]:
            continue
        try:
            shape = parse_dag_text(text, str(path))
            job_name, where = shape.job or (None, None)
            location = CodeLocation.from_dict(where)
        except (ConfigurationError, TypeError):
            continue  # not a job's DAG (a sensor's DAG has its own check)
        if isinstance(job_name, str) and shape.steps:
            found.setdefault(location, []).append((path, shape.dag_id or "", job_name))
    return found


def check_folder(folder: Path, location: CodeLocation | None = None) -> FolderCheck:
    """New, gone and drifted jobs of the folder's DAGs (of ``location``'s only, when given:
    then its jobs without a DAG are new even where the folder has none of its DAGs)."""
    if not folder.is_dir():
        raise ConfigurationError(
            f"the dags folder {str(folder)!r} is not a folder; pass the folder the DAG files "
            "were installed into."
        )
    groups = scaffolded_jobs(folder)
    if location is not None:
        groups = {location: groups.get(location, [])}
    lines: list[str] = []
    new = gone = drifted = matching = 0
    for where, files in groups.items():
        try:
            jobs, defines = _jobs_of(where)
        except DagsterAirflowError as exc:
            lines.append(f"cannot load {where.describe()} for {len(files)} DAG(s): {exc}")
            drifted += len(files)
            continue
        deployed = {job for _, _, job in files}
        for job in (j for j in jobs if j not in deployed):
            new += 1
            lines.append(
                f"new job: {job!r} of {where.describe()} has no DAG in {str(folder)!r}; scaffold "
                f"it with -j {job} --install (or --all)."
            )
        for path, dag_id, job in files:
            if not defines(job):
                gone += 1
                lines.append(
                    f"gone job: {str(path)!r} holds DAG {dag_id!r} of job {job!r}, which "
                    f"{where.describe()} no longer defines; delete the file."
                )
                continue
            differences = _differences(path)
            if differences:
                drifted += 1
                lines.append(
                    f"drifted job: {job!r} in {str(path)!r}: {'; '.join(differences)}; scaffold "
                    "it again (its SCAFFOLD_COMMAND)."
                )
            else:
                matching += 1
    return FolderCheck(tuple(lines), new, gone, drifted, matching)


def _jobs_of(location: CodeLocation):
    """The jobs `scaffold --all` would write a DAG for, and whether the location defines a
    job (its implicit asset job too), the location loaded once."""
    from dagster_airflow.job.code_location import defines_job, location_jobs, preload

    preload(location)
    return location_jobs(location), lambda job: defines_job(location, job)


def _differences(path: Path) -> list[str]:
    from dagster_airflow.scaffold.check import check_dag_file

    try:
        return check_dag_file(str(path))
    except DagsterAirflowError as exc:
        return [str(exc).rstrip(".")]
