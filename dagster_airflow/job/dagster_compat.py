"""Every private Dagster API dagster-airflow uses, in one place: a new Dagster minor is a change
to this file (and a row of the support table in docs/install.md), nowhere else.

Dagster side. Dagster's public API has no way to plan or execute one step of a run in a process
of its own, nor to load a code location as its CLI does; these names from ``dagster._...`` do.
No other module imports ``dagster._`` (tests/test_architecture.py checks it); they import the
names from here, inside the functions that need them, so importing a module of ours still does
not import Dagster.

Measured the same in Dagster 1.12.22 and 1.13.27 (names, modules and the signatures we call):
nothing differs between the two minors yet, so every name is a plain re-export.
"""

from __future__ import annotations

from dagster._config import ConfigTypeKind

# A module, not a name: the scaffold records the variables Dagster's config would read through it.
from dagster._config import source as config_source
from dagster._core.code_pointer import (
    FileCodePointer,
    ModuleCodePointer,
    load_python_file,
    load_python_module,
)
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.definitions.reconstruct import def_from_pointer, repository_def_from_target_def
from dagster._core.definitions.sensor_definition import DefaultSensorStatus, SensorType
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)
from dagster._core.errors import DagsterRunAlreadyExists
from dagster._core.events import DagsterEvent, DagsterEventType

# A module, not a name: the worker swaps its default_system_loggers while it plans a step.
from dagster._core.execution import context_creation_job
from dagster._core.execution.api import create_execution_plan, execute_plan_iterator
from dagster._core.execution.context.output import RUN_ID_PLACEHOLDER
from dagster._core.execution.plan.inputs import FromMultipleSources
from dagster._core.execution.plan.outputs import StepOutputHandle
from dagster._core.execution.plan.state import KnownExecutionState
from dagster._core.execution.plan.step import (
    UnresolvedCollectExecutionStep,
    UnresolvedMappedExecutionStep,
)
from dagster._core.execution.retries import RetryMode
from dagster._core.system_config.objects import ResolvedRunConfig
from dagster._core.workspace.autodiscovery import (
    loadable_targets_from_python_file,
    loadable_targets_from_python_module,
)
from dagster._utils.schedules import schedule_execution_time_iterator

# The Dagster minors this module was written and measured for (docs/install.md's table).
SUPPORTED_MINORS = ("1.12", "1.13")

__all__ = [
    "RUN_ID_PLACEHOLDER",
    "SUPPORTED_MINORS",
    "ConfigTypeKind",
    "DagsterEvent",
    "DagsterEventType",
    "DagsterRunAlreadyExists",
    "DefaultSensorStatus",
    "FileCodePointer",
    "FromMultipleSources",
    "InMemoryJob",
    "KnownExecutionState",
    "ModuleCodePointer",
    "ResolvedRunConfig",
    "RetryMode",
    "SensorType",
    "StepOutputHandle",
    "UnresolvedAssetJobDefinition",
    "UnresolvedCollectExecutionStep",
    "UnresolvedMappedExecutionStep",
    "config_source",
    "context_creation_job",
    "create_execution_plan",
    "def_from_pointer",
    "execute_plan_iterator",
    "load_python_file",
    "load_python_module",
    "loadable_targets_from_python_file",
    "loadable_targets_from_python_module",
    "partition_loading_context",
    "repository_def_from_target_def",
    "schedule_execution_time_iterator",
]
