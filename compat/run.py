"""`make test-compat`: every supported Airflow x Dagster combination, each side in its own
environment, through compat/check.py; then the support table in docs/install.md from the results.

    python compat/run.py [--only 3.1x1.12 ...] [--cache .compat]

Environments are uv venvs under the cache folder, one per side and minor
(``.compat/airflow-3.1``, ``.compat/dagster-1.12``), made once from this checkout (editable) and
compat/constraints-<side>-<minor>.txt, which pins every package (the minor's newest patch, and
the rest as resolved when the combination last passed: a bare pin let uv pick a FastAPI that
Airflow 3.2.2 breaks on). Nothing but the package index is reached. Each combination's result
goes to compat/results/<combination>.json (committed: the table is generated from them, and
tests/test_compat.py checks the docs say what they say); the run's work folders stay under the
cache. Exit status 1 when a combination fails.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from table import RESULTS, write_table  # noqa: E402
from versions import AIRFLOW, COMBINATIONS, DAGSTER, combination_name  # noqa: E402


def uv(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "uv", *args], check=True, cwd=ROOT)


def environment(cache: Path, side: str, minor: str) -> Path:
    """The side's venv for this minor, made when missing; its Python."""
    folder = cache / f"{side}-{minor}"
    python = folder / "bin" / "python"
    stamp = folder / ".installed"
    constraints = HERE / f"constraints-{side}-{minor}.txt"
    if stamp.exists() and stamp.stat().st_mtime >= constraints.stat().st_mtime:
        return python
    shutil.rmtree(folder, ignore_errors=True)
    uv("venv", "--quiet", "--python", sys.executable, str(folder))
    # Compiled: every `airflow` command and every step imports its side again.
    uv(
        *("pip", "install", "--quiet", "--compile-bytecode", "--python", str(python)),
        *("-c", str(constraints), "-e", f"{ROOT}[{side}]"),
    )
    stamp.touch()
    return python


def run_combination(cache: Path, airflow: str, dagster: str) -> dict:
    name = combination_name(airflow, dagster)
    airflow_python = environment(cache, "airflow", airflow)
    dagster_python = environment(cache, "dagster", dagster)
    work = cache / "work" / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print(f"== {name}", file=sys.stderr, flush=True)
    started = time.monotonic()
    done = subprocess.run(
        [
            *(str(dagster_python), str(HERE / "check.py")),
            *("--airflow-python", str(airflow_python), "--work", str(work)),
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )
    (work / "check.log").write_text(done.stderr)
    print("\n".join(line for line in done.stderr.splitlines() if ": " in line and " in " in line))
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        result = {"checks": [], "error": done.stderr[-2000:]}
    return {
        "combination": name,
        "airflow_minor": airflow,
        "dagster_minor": dagster,
        "airflow": result.get("airflow", AIRFLOW[airflow]),
        "dagster": result.get("dagster", DAGSTER[dagster]),
        "passed": bool(result["checks"]) and all(c["passed"] for c in result["checks"]),
        "minutes": round((time.monotonic() - started) / 60, 1),
        **result,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], help="e.g. 3.1x1.12")
    parser.add_argument("--cache", type=Path, default=ROOT / ".compat")
    args = parser.parse_args()
    named = {f"{a}x{d}": (a, d) for a, d in COMBINATIONS}
    unknown = [o for o in args.only if o not in named]
    if unknown:
        parser.error(f"no supported combination {unknown[0]!r}; choose from {', '.join(named)}")
    chosen = [named[o] for o in args.only] or list(COMBINATIONS)  # in the order given
    RESULTS.mkdir(exist_ok=True)
    failed = []
    for airflow, dagster in chosen:
        result = run_combination(args.cache.resolve(), airflow, dagster)
        path = RESULTS / f"{result['combination']}.json"
        path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        if not result["passed"]:
            failed.append(result["combination"])
    write_table()
    print("failed: " + " ".join(failed) if failed else f"{len(chosen)} combinations passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
