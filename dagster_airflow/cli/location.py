"""The job and its code location, from -j/JOB and -f, -m, -w (or what the working directory
declares), as Dagster's CLI reads them."""

from __future__ import annotations

import argparse
from pathlib import Path

from dagster_airflow.errors import ConfigurationError
from dagster_airflow.model import CodeLocation


def named_job(args: argparse.Namespace) -> str:
    """The job, named positionally or with -j/--job as Dagster spells it."""
    if args.job and args.job_option and args.job != args.job_option:
        raise ConfigurationError(
            f"two jobs named: {args.job!r} and -j {args.job_option!r}; name the job once."
        )
    job = args.job or args.job_option
    if not job:
        raise ConfigurationError(
            "no job named; pass the Dagster job's name, as in `dagster-airflow scaffold "
            "my_job -e run_config.yml` or -j my_job."
        )
    return job


def code_location(args: argparse.Namespace, job_name: str) -> CodeLocation:
    def absolute(path: str | None) -> str | None:
        return str(Path(path).expanduser().absolute()) if path else None

    working_directory = absolute(args.working_directory)
    if not (args.python_file or args.module_name or args.workspace):
        return discovered_location(args, job_name, working_directory)
    if args.python_file:
        python_file = Path(args.python_file).expanduser()
        if not python_file.is_file():
            raise ConfigurationError(
                f"code location file {args.python_file!r} does not exist; check the -f path."
            )
        working_directory = working_directory or str(Path.cwd())
    return CodeLocation(
        python_file=absolute(args.python_file),
        module_name=args.module_name,
        workspace=absolute(args.workspace),
        attribute=args.attribute,
        working_directory=working_directory or (None if args.workspace else str(Path.cwd())),
        location_name=args.location_name,
    )


def discovered_location(
    args: argparse.Namespace, job_name: str, working_directory: str | None
) -> CodeLocation:
    """With no -f, -m or -w: what the working directory declares, as Dagster's CLI finds it."""
    import attrs

    from dagster_airflow.job.code_location import first_with_job
    from dagster_airflow.job.discovery import discover

    candidates, declared_in = discover()
    if candidates[0].workspace:
        return attrs.evolve(candidates[0], location_name=args.location_name)
    candidates = [
        attrs.evolve(
            c,
            attribute=args.attribute or c.attribute,
            working_directory=working_directory or c.working_directory,
        )
        for c in candidates
    ]
    return first_with_job(candidates, job_name, f"the modules of {str(declared_in)!r}")
