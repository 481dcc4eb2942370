"""`scaffold --install`: a DAG file into Airflow's dags folder, losing nothing.

The file is named for its DAG id, so two DAGs of one job never share a file; a file that holds
another DAG (or one not written by the scaffold) is replaced only with ``--force``; and the file
is readable by whoever the umask allows, as the DAG processor may run as another user.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from dagster_airflow.errors import ConfigurationError
from dagster_airflow.files import write_whole

# Airflow's rule for a DAG id (airflow.utils.helpers.KEY_REGEX, and ID_LEN in airflow.models).
DAG_ID_PATTERN = re.compile(r"^[\w.-]+$")
DAG_ID_MAX_LENGTH = 250
# The first line of every file the scaffold writes, and the line holding its DAG id.
SCAFFOLD_MARK = "scaffolded by dagster-airflow"
_DAG_ID_LINE = re.compile(r"^    dag_id=(\".*\"),$", re.M)


def check_dag_id(dag_id: str) -> str:
    """The DAG id when Airflow accepts it (letters, digits, '_', '.', '-'; at most 250)."""
    if not DAG_ID_PATTERN.match(dag_id) or len(dag_id) > DAG_ID_MAX_LENGTH:
        suggestion = re.sub(r"[^\w.-]", "_", dag_id)[:DAG_ID_MAX_LENGTH] or "my_dag"
        raise ConfigurationError(
            f"--dag-id {dag_id!r} is not a DAG id Airflow accepts (letters, digits, '_', '.' "
            f"and '-', at most {DAG_ID_MAX_LENGTH} characters); use one such as {suggestion!r}."
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
    found = _DAG_ID_LINE.search(text)
    if not found:
        return None
    try:
        value = json.loads(found.group(1))
    except ValueError:
        return None
    return value if isinstance(value, str) else None


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
    text: str, folder: Path, dag_id: str, force: bool = False, create: bool = True
) -> tuple[Path, list[Path]]:
    """Write ``{dag_id}.py`` into the dags folder, whole. Returns the file, and the older files
    holding the same DAG that ``force`` removed (an earlier version named them otherwise).

    ``create``: make the folder if it is missing (Airflow's configured one); an explicit
    ``--dags-folder`` must exist, so a typo does not write where Airflow never looks.
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
    duplicates = [
        path
        for path in sorted(folder.glob("*.py"))
        if path != target and scaffolded_dag_id(path) == dag_id
    ]
    if duplicates and not force:
        raise ConfigurationError(
            f"DAG {dag_id!r} is already in {str(duplicates[0])!r}, and Airflow refuses a DAG id "
            "defined twice; delete that file, or pass --force to replace it."
        )
    try:
        with write_whole(target) as stream:
            stream.write(text.encode())
        for path in duplicates:
            path.unlink()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot write the DAG file into the dags folder {str(folder)!r} ({exc.strerror}); "
            "pass --dags-folder or set AIRFLOW__CORE__DAGS_FOLDER to a folder you can write."
        ) from exc
    return target, duplicates
