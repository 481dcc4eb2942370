"""Loads a Dagster job from a code location (-f, -m or -w, as the Dagster CLI has them)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs

from dagster_airflow.errors import CodeLocationError, yaml_problem
from dagster_airflow.model import CodeLocation


def _repositories(location: CodeLocation) -> Iterator:
    """The RepositoryDefinitions a (file or module) code location defines."""
    from dagster_airflow.job.dagster_compat import (
        FileCodePointer,
        ModuleCodePointer,
        def_from_pointer,
        loadable_targets_from_python_file,
        loadable_targets_from_python_module,
        repository_def_from_target_def,
    )

    working_directory = location.working_directory or os.getcwd()
    if working_directory not in sys.path:
        sys.path.insert(0, working_directory)
    if location.attribute:
        _check_attribute(location, working_directory)
        if location.python_file:
            pointer = FileCodePointer(location.python_file, location.attribute, working_directory)
        else:
            pointer = ModuleCodePointer(location.module_name, location.attribute, working_directory)
        targets = [def_from_pointer(pointer)]
    elif location.python_file:
        found = loadable_targets_from_python_file(location.python_file, working_directory)
        targets = [t.target_definition for t in found]
    else:
        found = loadable_targets_from_python_module(location.module_name, working_directory)
        targets = [t.target_definition for t in found]
    for target in targets:
        repository = repository_def_from_target_def(target)
        if repository is not None:
            yield repository


def _check_attribute(location: CodeLocation, working_directory: str) -> None:
    """A -a that the file or module does not have is one sentence listing the ones it has."""
    import dagster as dg

    from dagster_airflow.job.dagster_compat import (
        UnresolvedAssetJobDefinition,
        load_python_file,
        load_python_module,
    )

    if location.python_file:
        module = load_python_file(location.python_file, working_directory)
    else:
        module = load_python_module(location.module_name, working_directory)
    if hasattr(module, location.attribute):
        return
    kinds = (
        dg.Definitions,
        dg.RepositoryDefinition,
        dg.JobDefinition,
        dg.GraphDefinition,
        UnresolvedAssetJobDefinition,
    )
    found = sorted(
        name
        for name, value in vars(module).items()
        if isinstance(value, kinds) and not name.startswith("_")
    )
    kind = "file" if location.python_file else "module"
    where = f"{kind} {location.python_file or location.module_name!r}"
    if found:
        has = f"its Definitions, repositories and jobs are: {', '.join(found)}"
        fix = "pass one of them with -a, or leave -a out to find them"
    else:
        has = "it defines no Definitions, repository or job at module level"
        fix = "define one, or leave -a out"
    raise CodeLocationError(f"{where} has no attribute {location.attribute!r}; {has}: {fix}.")


def workspace_locations(location: CodeLocation) -> list[CodeLocation]:
    """The file and module code locations a workspace.yaml lists, paths made absolute."""
    import yaml

    from dagster_airflow.job.yaml_files import load_yaml, read_text

    path = Path(location.workspace).expanduser()
    what = f"workspace {str(path)!r}"
    try:
        data = load_yaml(read_text(path, what, CodeLocationError), what, CodeLocationError)
    except OSError as exc:
        raise CodeLocationError(f"cannot read workspace {str(path)!r}: {exc.strerror}.") from exc
    except yaml.YAMLError as exc:
        raise CodeLocationError(
            f"workspace {str(path)!r} is not valid YAML ({yaml_problem(exc)}); fix it."
        ) from exc
    entries = (data or {}).get("load_from") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise CodeLocationError(
            f"workspace {str(path)!r} has no 'load_from' list; list its code locations there "
            "as python_file or python_module entries."
        )
    base = path.parent.absolute()
    locations = []
    for entry in entries:
        kind, spec = (
            next(iter(entry.items())) if isinstance(entry, dict) and entry else (None, None)
        )
        if kind not in ("python_file", "python_module", "python_package"):
            raise CodeLocationError(
                f"workspace {str(path)!r} has an entry {entry!r} this tool cannot load; use "
                "python_file, python_module or python_package entries."
            )
        spec = (
            {"relative_path" if kind == "python_file" else "module_name": spec}
            if isinstance(spec, str)
            else dict(spec)
        )
        working_directory = spec.get("working_directory")
        working_directory = str(base / working_directory) if working_directory else str(base)
        if kind == "python_file":
            python_file = base / str(spec.get("relative_path", ""))
            if not python_file.is_file():
                raise CodeLocationError(
                    f"workspace {str(path)!r} lists python_file {spec.get('relative_path')!r}, "
                    f"and there is no file {str(python_file)!r}; fix its relative_path (relative "
                    "to the workspace's folder)."
                )
            target = {"python_file": str(python_file)}
        else:
            target = {"module_name": spec.get("module_name") or spec.get("package_name")}
        found = CodeLocation(
            attribute=spec.get("attribute"),
            working_directory=working_directory,
            location_name=spec.get("location_name"),
            **target,
        )
        locations.append(attrs.evolve(found, location_name=found.name))
    if location.location_name:
        locations = [loc for loc in locations if loc.location_name == location.location_name]
        if not locations:
            raise CodeLocationError(
                f"workspace {str(path)!r} has no code location named "
                f"{location.location_name!r}; check its location_name entries."
            )
    return locations


def resolve(location: CodeLocation, job_name: str) -> CodeLocation:
    """A file or module code location that defines the job (a workspace is searched)."""
    if not location.workspace:
        return location
    return first_with_job(
        workspace_locations(location), job_name, f"workspace {location.workspace!r}"
    )


def first_with_job(candidates: list[CodeLocation], job_name: str, where: str) -> CodeLocation:
    """The first of several code locations that defines the job; ``where`` names them all."""
    if len(candidates) == 1:
        return candidates[0]
    for candidate in candidates:
        if job_name in job_names(candidate):
            return candidate
    names = sorted({name for c in candidates for name in job_names(c)})
    raise CodeLocationError(
        f"job {job_name!r} is not in {where}; its jobs are: {', '.join(names) or 'none'}."
    )


# Code locations a step server loaded before forking its steps: a forked step reuses them, so
# the user's module-level code runs once per server (docs/step-server.md).
_preloaded: dict[CodeLocation, list] = {}


def preload(location: CodeLocation) -> None:
    """Load a code location once, for every step later forked from this process."""
    _preloaded[location] = _load(location)


def _load(location: CodeLocation) -> list:
    if location in _preloaded:
        return _preloaded[location]
    try:
        return list(_repositories(location))
    except CodeLocationError:
        raise
    except Exception as exc:
        # The user's code failed to import or to build its definitions: say which and why, with
        # the root cause rather than Dagster's wrapper around it.
        root = exc
        while root.__cause__ is not None:
            root = root.__cause__
        raise CodeLocationError(
            f"could not load the code location {location.describe()}: "
            f"{type(root).__name__}: {root}; fix the code, or pass -d with the directory it "
            "imports from."
        ) from exc


def job_names(location: CodeLocation) -> list[str]:
    return sorted(
        {name for repo in _load(location) for name in repo.job_names if not name.startswith("__")}
    )


def load_job(location: CodeLocation, job_name: str):
    """The JobDefinition named ``job_name`` in a file or module code location."""
    return repository_of(location, job_name).get_job(job_name)


def repository_of(location: CodeLocation, job_name: str):
    """The repository (a Definitions) of a file or module code location that holds the job."""
    repositories = _load(location)
    for repository in repositories:
        if repository.has_job(job_name):
            return repository
    names = sorted({n for r in repositories for n in r.job_names if not n.startswith("__")})
    raise CodeLocationError(
        f"job {job_name!r} is not in {location.describe()}; its jobs are: "
        f"{', '.join(names) or 'none'}."
    )


# Dagster's implicit asset job: every asset of a location that defines no job of its own.
IMPLICIT_ASSET_JOB = "__ASSET_JOB"


def location_jobs(location: CodeLocation) -> list[str]:
    """The jobs `scaffold --all` writes a DAG for: the location's jobs, or, where it defines
    none, Dagster's implicit asset job (materialize every asset)."""
    names = job_names(location)
    if names:
        return names
    if any(repo.has_job(IMPLICIT_ASSET_JOB) for repo in _load(location)):
        return [IMPLICIT_ASSET_JOB]
    return []


def defines_job(location: CodeLocation, job_name: str) -> bool:
    """Whether the location defines the job (its implicit asset job included)."""
    return any(repo.has_job(job_name) for repo in _load(location))


def default_dag_id(location: CodeLocation, job_name: str) -> str:
    """A job's DAG id when the user names none: the job's name; for the implicit asset job,
    ``{location name}__all_assets``: ``__ASSET_JOB`` is Dagster's internal name, and the
    location's name keeps apart the DAGs of several locations that each have one."""
    if job_name != IMPLICIT_ASSET_JOB:
        return job_name
    import re

    return re.sub(r"[^\w.-]", "_", location.name).lstrip(".") + "__all_assets"


def single_location(location: CodeLocation, what: str) -> CodeLocation:
    """The one file or module code location of ``location`` (a workspace must list one, or -l
    must pick it): ``what`` names the command that needs one."""
    if not location.workspace:
        return location
    found = workspace_locations(location)
    if len(found) == 1:
        return found[0]
    names = ", ".join(repr(loc.location_name) for loc in found)
    raise CodeLocationError(
        f"workspace {location.workspace!r} lists {len(found)} code locations ({names}) and "
        f"{what} takes one; pick it with -l NAME."
    )
