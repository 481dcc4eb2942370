"""A dagster-airflow runner that runs each step with the Python of a given virtual environment.

Steps whose dependencies conflict (with Airflow's, or with each other's) live side by side without
containers: give a DAG, or one task, the virtual environment that holds its code's dependencies
and ``dagster-on-airflow[dagster]``:

    DEFAULT_ARGS = {"runner": {"name": "venv", "venv": "/opt/venvs/etl"}, ...}

The steps run on the Airflow worker's machine, so the default storage is the filesystem.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from dagster_airflow import hookimpl
from dagster_airflow.errors import RunnerError
from dagster_airflow.model import StepRequest
from dagster_airflow.options import OptionFields
from dagster_airflow.runners.base import RunContext
from dagster_airflow.runners.subprocess import SubprocessRunner
from dagster_airflow.step_result import StepResult

__version__ = "0.1.0"


_field = OptionFields("the venv runner")


@attrs.frozen
class VenvOptions:
    """The venv runner's own option; the rest are the subprocess runner's, checked there."""

    venv: str = _field.string("venv", example="/opt/venvs/etl")


class VenvRunner(SubprocessRunner):
    """Runs each step's worker with ``{venv}/bin/python``, as if the venv were activated.

    Options: ``venv`` (the virtual environment's directory), ``env`` (extra environment
    variables), ``working_dir``, ``kill_timeout`` (seconds between SIGTERM and SIGKILL), and the
    step server's ``warm``, ``idle_timeout`` and ``runtime_dir``: as for the subprocess runner,
    steps are forked from a step server that the venv's own Python runs (one per venv and code
    location), and ``warm: false`` gives a fresh process per step.
    """

    name = "venv"

    def __init__(
        self,
        venv: str,
        env: Mapping[str, str] | None = None,
        working_dir: str | None = None,
        kill_timeout: float = 10.0,
        warm: bool = True,
        idle_timeout: float = 600.0,
        runtime_dir: str | None = None,
    ) -> None:
        self.venv = Path(VenvOptions(venv).venv).expanduser().absolute()
        bin_dir = self.venv / "bin"
        activated = {
            "VIRTUAL_ENV": str(self.venv),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            # Nothing of the Airflow worker's own Python may leak into the step's (empty is unset).
            "PYTHONPATH": "",
            "PYTHONHOME": "",
        }
        super().__init__(
            python=str(bin_dir / "python"),
            env={**activated, **(env or {})},
            working_dir=working_dir,
            kill_timeout=kill_timeout,
            warm=warm,
            idle_timeout=idle_timeout,
            runtime_dir=runtime_dir,
        )

    @classmethod
    def scaffold_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        # A DAG file outlives the directory it was scaffolded from: write an absolute path.
        if isinstance(options.get("venv"), str):
            options = {**options, "venv": str(Path(options["venv"]).expanduser().absolute())}
        return options

    def run(self, request: StepRequest, context: RunContext) -> StepResult:
        if not Path(self.python).is_file():
            raise RunnerError(
                f"venv runner: there is no virtual environment at {str(self.venv)!r} (no "
                f"{self.python!r}); create it with `uv venv {self.venv}` and install "
                "'dagster-on-airflow[dagster]' and your job's dependencies into it."
            )
        result = super().run(request, context)
        if result.error and "No module named dagster_airflow" in result.error.summary():
            raise RunnerError(
                f"venv runner: the virtual environment {str(self.venv)!r} lacks dagster-airflow; "
                f"install it with `uv pip install --python {self.python} "
                "'dagster-on-airflow[dagster]'`."
            )
        return result


@hookimpl
def dagster_airflow_register_runners(register):
    register(VenvRunner)
