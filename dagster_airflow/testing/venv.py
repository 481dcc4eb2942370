"""A real virtual environment for steps to run in, made with uv (fast from uv's cache)."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

# One install at a time across processes (pytest-xdist workers): two editable installs of one
# checkout at once would both rewrite its egg-info.
LOCK_FILE = Path(tempfile.gettempdir()) / "dagster-airflow-create-venv.lock"


def uv_command() -> list[str]:
    """uv on the PATH, beside this Python, or as python3's module (what `make` installs)."""
    found = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    return [found] if found else ["python3", "-m", "uv"]


def create_venv(path: Path, requirements: Sequence[str], constraints: Path | None = None) -> Path:
    """Create a virtual environment at ``path`` with this Python's version and install
    ``requirements`` (pip arguments: "dagster-on-airflow[dagster]", "-e", "/src/pkg[dagster]")."""
    install = [*uv_command(), "pip", "install", "--quiet", "--python", str(path / "bin" / "python")]
    if constraints is not None:
        install += ["-c", str(constraints)]
    with open(LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        for command in (
            [*uv_command(), "venv", "--quiet", "--python", sys.executable, str(path)],
            [*install, *requirements],
        ):
            done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}")
    return path
