"""`scaffold --install`: a DAG file into Airflow's dags folder, losing nothing.

The file is named for its DAG id, so two DAGs of one job never share a file; a file that holds
another DAG (or one not written by the scaffold) is replaced only with ``--force``; and the file
is readable by whoever the umask allows, as the DAG processor may run as another user.
"""

from __future__ import annotations

import re
from pathlib import Path

from dagster_airflow.errors import ConfigurationError
from dagster_airflow.files import write_whole
from dagster_airflow.scaffold.dag_definitions import dag_ids_by_file
from dagster_airflow.scaffold.dag_file import SCAFFOLD_MARK, parse_dag_text

# Airflow's rule for a DAG id (airflow.utils.helpers.KEY_REGEX, and ID_LEN in airflow.models).
DAG_ID_PATTERN = re.compile(r"^[\w.-]+$")
DAG_ID_MAX_LENGTH = 250


def check_dag_id(dag_id: str) -> str:
    """The DAG id when Airflow accepts it (letters, digits, '_', '.', '-'; at most 250) and it
    names a plain file ``{dag_id}.py``: the whole id matches (Airflow's ``$`` lets a trailing
    newline through), it does not start with '.' (a hidden file; '..' in a URL), and its file
    name fits in a file system's 255 bytes."""
    if not DAG_ID_PATTERN.fullmatch(dag_id) or len(dag_id) > DAG_ID_MAX_LENGTH:
        suggestion = re.sub(r"[^\w.-]", "_", dag_id)[:DAG_ID_MAX_LENGTH] or "my_dag"
        raise ConfigurationError(
            f"--dag-id {dag_id!r} is not a DAG id Airflow accepts (letters, digits, '_', '.' "
            f"and '-', at most {DAG_ID_MAX_LENGTH} characters); use one such as {suggestion!r}."
        )
    if dag_id.startswith("."):
        raise ConfigurationError(
            f"--dag-id {dag_id!r} starts with '.', which would make its file hidden and its "
            "URLs ambiguous; start it with a letter, a digit or '_'."
        )
    if len(f"{dag_id}.py".encode("utf-8", "surrogateescape")) > 255:
        raise ConfigurationError(
            f"--dag-id {dag_id!r} makes a file name longer than the 255 bytes a file system "
            "allows; use a shorter id."
        )
    return dag_id


def scaffolded_dag_id(path: Path) -> str | None:
    """The DAG id of a file the scaffold wrote, or None for any other file."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    if SCAFFOLD_MARK not in text.partition("\n")[0]:
        return None
    try:
        return parse_dag_text(text, str(path)).dag_id
    except ConfigurationError:
        return None


def scaffolded_job(text: str) -> tuple[object, object] | None:
    """The job name and code location a scaffolded DAG file's DEFAULT_ARGS name, if readable."""
    try:
        return parse_dag_text(text, "the DAG file").job
    except ConfigurationError:
        return None


def _check_same_job(target: Path, text: str, dag_id: str) -> None:
    """A scaffolded file of the same DAG id is replaced only by a DAG of the same job (the same
    name from the same code location); another job's DAG needs --force."""
    try:
        held = scaffolded_job(target.read_text(errors="replace"))
    except OSError:
        return
    ours = scaffolded_job(text)
    if held is None or ours is None or held == ours:
        return
    job, location = held
    where = (
        location.get("python_file") or location.get("module_name") or location.get("workspace")
        if isinstance(location, dict)
        else None
    )
    raise ConfigurationError(
        f"{str(target)!r} holds DAG {dag_id!r} of job {job!r} from {where!r}, not of job "
        f"{ours[0]!r} from this code location; choose another --dag-id, or pass --force to "
        "replace it."
    )


def _cannot_write(folder: Path, exc: OSError) -> ConfigurationError:
    return ConfigurationError(
        f"cannot write the DAG file into the dags folder {str(folder)!r} ({exc.strerror}); "
        "pass --dags-folder or set AIRFLOW__CORE__DAGS_FOLDER to a folder you can write."
    )


def _check_writable(folder: Path) -> None:
    """Fail before reading the whole folder when no file can be written into it (``/proc``)."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise _cannot_write(folder, exc) from exc


def _folder_ready(folder: Path, create: bool) -> None:
    if folder.is_dir():
        return
    if folder.exists():
        raise ConfigurationError(
            f"the dags folder {str(folder)!r} is not a folder; pass --dags-folder with Airflow's "
            "dags folder (AIRFLOW__CORE__DAGS_FOLDER)."
        )
    if not create:
        raise ConfigurationError(
            f"the dags folder {str(folder)!r} does not exist; create it, or pass --dags-folder "
            "with Airflow's dags folder (AIRFLOW__CORE__DAGS_FOLDER)."
        )
    try:
        folder.mkdir(parents=True)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create the dags folder {str(folder)!r} ({exc.strerror}); create it, or set "
            "AIRFLOW__CORE__DAGS_FOLDER or pass --dags-folder with one you can write."
        ) from exc


def install_dag(
    text: str,
    folder: Path,
    dag_id: str,
    force: bool = False,
    create: bool = True,
    check_only: bool = False,
) -> tuple[Path, list[Path]]:
    """Write ``{dag_id}.py`` into the dags folder, whole. Returns the file, and the older files
    holding the same DAG that ``force`` removed (an earlier version named them otherwise).

    ``create``: make the folder if it is missing (Airflow's configured one); an explicit
    ``--dags-folder`` must exist, so a typo does not write where Airflow never looks.
    ``check_only``: raise what writing would raise, and write nothing (`scaffold --all` checks
    every file before it writes the first).
    """
    check_dag_id(dag_id)
    _folder_ready(folder, create)
    target = folder / f"{dag_id}.py"
    if target.exists() and not force:
        held = scaffolded_dag_id(target)
        if held != dag_id:
            what = f"DAG {held!r}" if held else "a file not written by the scaffold"
            raise ConfigurationError(
                f"{str(target)!r} holds {what}; pass --force to replace it, or choose another "
                "--dag-id."
            )
        _check_same_job(target, text, dag_id)
    _check_writable(folder)
    defining = {
        path: scaffolded_dag_id(path) == dag_id
        for path, ids in dag_ids_by_file(folder).items()
        if dag_id in ids and path != target
    }
    duplicates = [path for path, scaffolded in defining.items() if scaffolded]
    if defining and not force:
        path = next(iter(defining))
        what = (
            "an older scaffolded file" if defining[path] else "a file not written by the scaffold"
        )
        raise ConfigurationError(
            f"DAG {dag_id!r} is already in {str(path)!r} ({what}), and Airflow refuses "
            "a DAG id defined twice; delete that file or its DAG, choose another --dag-id, or "
            "pass --force to write it anyway (removing older scaffolded files)."
        )
    if check_only:
        return target, duplicates
    try:
        with write_whole(target) as stream:
            stream.write(text.encode())
        for path in duplicates:
            path.unlink()
    except OSError as exc:
        raise _cannot_write(folder, exc) from exc
    return target, duplicates
