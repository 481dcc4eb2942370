"""The job and its code location, from -j/JOB and -f, -m, -w (or what the working directory
declares), as Dagster's CLI reads them; the code location's flags, declared once for every command
that takes them."""

from __future__ import annotations

import argparse
from pathlib import Path

from dagster_airflow.errors import ConfigurationError
from dagster_airflow.model import CodeLocation


def named_job(args: argparse.Namespace) -> str:
    """The job, named positionally or with -j/--job as Dagster spells it."""
    jobs = named_jobs(args)
    if len(jobs) != 1:
        raise ConfigurationError(
            f"{len(jobs)} jobs named ({', '.join(map(repr, jobs))}); name one job."
        )
    return jobs[0]


def named_jobs(args: argparse.Namespace) -> list[str]:
    """The jobs named positionally or with -j/--job (which may repeat), each once."""
    options = args.job_option or []
    if isinstance(options, str):
        options = [options]
    if args.job and options and [args.job] != options:
        raise ConfigurationError(
            f"two jobs named: {args.job!r} and -j {', '.join(map(repr, options))}; name the job "
            "once, or each job with -j."
        )
    jobs = list(dict.fromkeys([args.job] if args.job else options))
    if not jobs:
        raise ConfigurationError(
            "no job named; pass the Dagster job's name, as in `dagster-airflow scaffold "
            "my_job -e run_config.yml` or -j my_job, or --all for every job of the code location."
        )
    return jobs


def add_location_flags(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """-f, -m or -w (one of them; ``required``: one must be given), with -a, -d and -l."""
    # None of them: the working directory's pyproject.toml or workspace.yaml, as Dagster's CLI.
    where = parser.add_mutually_exclusive_group(required=required)
    where.add_argument("-f", "--python-file", help="the Python file that defines the job")
    where.add_argument("-m", "--module-name", help="the Python module that defines the job")
    where.add_argument("-w", "--workspace", help="a Dagster workspace.yaml")
    parser.add_argument("-a", "--attribute", help="the Definitions, repository or job attribute")
    parser.add_argument("-d", "--working-directory", help="the directory the code imports from")
    parser.add_argument("-l", "--location-name", help="with -w: the code location to use")


def located(args: argparse.Namespace) -> bool:
    """Whether the command line names its code location (-f, -m or -w)."""
    return bool(args.python_file or args.module_name or args.workspace)


def _absolute(path: str | None) -> str | None:
    return str(Path(path).expanduser().absolute()) if path else None


def code_location(args: argparse.Namespace, job_name: str) -> CodeLocation:
    working_directory = _absolute(args.working_directory)
    if not located(args):
        return discovered_location(args, job_name, working_directory)
    if args.python_file:
        python_file = Path(args.python_file).expanduser()
        if not python_file.is_file():
            raise ConfigurationError(
                f"code location file {args.python_file!r} does not exist; check the -f path."
            )
        working_directory = working_directory or str(Path.cwd())
    return CodeLocation(
        python_file=_absolute(args.python_file),
        module_name=args.module_name,
        workspace=_absolute(args.workspace),
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


def location_of_all(args: argparse.Namespace, what: str) -> CodeLocation:
    """The one code location that --all (or a list of -j) takes, from -f, -m, -w (with -l) or
    the working directory."""
    import attrs

    from dagster_airflow.job.code_location import single_location
    from dagster_airflow.job.discovery import discover

    if located(args):
        return single_location(code_location(args, ""), what)
    candidates, declared_in = discover()
    if candidates[0].workspace:
        found = attrs.evolve(candidates[0], location_name=args.location_name)
        return single_location(found, what)
    if len(candidates) > 1:
        raise ConfigurationError(
            f"{str(declared_in)!r} declares {len(candidates)} code locations and {what} takes "
            "one; pass it with -m MODULE."
        )
    return attrs.evolve(
        candidates[0],
        attribute=args.attribute or candidates[0].attribute,
        working_directory=_absolute(args.working_directory) or candidates[0].working_directory,
    )
