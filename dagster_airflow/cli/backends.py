"""The --runner-option and --storage-option flags: KEY=VALUE read as YAML, checked against the
backend's options before anything is written."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from dagster_airflow.errors import ConfigurationError, yaml_problem
from dagster_airflow.model import RunnerSpec, StorageSpec


def parse_option(text: str, flag: str) -> tuple[str, Any]:
    import yaml

    from dagster_airflow.job.yaml_files import load_yaml

    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigurationError(
            f"{flag} {text!r} is not KEY=VALUE; write it as {flag} name=value."
        )
    try:
        value = load_yaml(raw, f"{flag} {text!r}") if raw else ""
    except yaml.YAMLError as exc:
        raise ConfigurationError(
            f"{flag} {text!r} has a value that is not valid YAML ({yaml_problem(exc)}); quote "
            f"it as a string ({key}='\"...\"') or fix the YAML, such as {key}='{{A: b}}'."
        ) from None
    return key.strip(), value


def runner_and_storage(args: argparse.Namespace) -> tuple[RunnerSpec, StorageSpec]:
    """The DAG's runner and storage from --runner, --storage and their options, checked (the
    storage's default: the runner's)."""
    runner, runner_backend = _backend_spec(RunnerSpec, "runner", args.runner, args.runner_option)
    storage_name = args.storage or runner_backend.cls.default_storage
    storage, _ = _backend_spec(StorageSpec, "storage", storage_name, args.storage_option)
    return runner, storage


def _backend_spec(cls, kind: str, name: str, options: Sequence[str]):
    from dagster_airflow.plugins.manager import check_options, get_plugins

    values = dict(parse_option(o, f"--{kind}-option") for o in options)
    backend = getattr(get_plugins(), kind)(name)
    check_options(kind, name, backend.cls, values)
    values = backend.cls.scaffold_options(values)
    # Built (it connects to nothing) so that a wrong value fails here, not in every task.
    backend.create(values)
    return cls(name=name, options=values), backend
