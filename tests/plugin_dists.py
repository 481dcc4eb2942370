"""Installed distributions made for a test: a module plus a dist-info directory on a path."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write_distribution(
    where: Path, name: str, module_source: str, entry_points: dict[str, str], version: str = "1.0"
) -> Path:
    """Write module ``{name}_plugin.py`` and a dist-info declaring ``entry_points``
    ({group: "ep_name = target"}) into ``where``; put ``where`` on sys.path or PYTHONPATH."""
    where.mkdir(parents=True, exist_ok=True)
    (where / f"{name}_plugin.py").write_text(textwrap.dedent(module_source))
    dist = where / f"{name}_plugin-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}-plugin\nVersion: {version}\n"
    )
    (dist / "entry_points.txt").write_text(
        "".join(f"[{group}]\n{line}\n" for group, line in entry_points.items())
    )
    return where
