"""One runner contract: no built-in backend overrides the lifecycle's run() or reaches into a
private attribute of the base, and each declares its options once."""

from __future__ import annotations

import ast
import inspect

import attrs
import pytest

from dagster_airflow.errors import ConfigurationError
from dagster_airflow.options import declared_options
from dagster_airflow.plugins.manager import DEFAULT_PLUGINS, get_plugins
from dagster_airflow.runners import docker, ecs, graphql, lifecycle, subprocess

REMOTE = [docker.DockerRunner, ecs.EcsRunner, graphql.GraphQLRunner]
BASE_PRIVATE = {
    name
    for cls in (lifecycle.RemoteRunner, lifecycle.StepRunner)
    for name in vars(cls)
    if name.startswith("_") and not name.startswith("__")
} | {"_lifecycle", "_RemoteRunner__switch"}


@pytest.mark.parametrize("cls", REMOTE, ids=lambda c: c.name)
def test_no_remote_backend_overrides_run_or_kill(cls):
    assert "run" not in vars(cls) and "kill" not in vars(cls)
    assert cls.run is lifecycle.RemoteRunner.run


@pytest.mark.parametrize("module", [docker, ecs, graphql, subprocess], ids=lambda m: m.__name__)
def test_no_backend_reads_a_private_attribute_of_the_base(module):
    tree = ast.parse(inspect.getsource(module))
    touched = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in BASE_PRIVATE
    }
    assert touched == set(), f"{module.__name__} reads the base's {sorted(touched)}"


@pytest.mark.parametrize("name", ["subprocess", "docker", "ecs", "graphql"])
def test_each_builtin_runner_declares_its_options_once(name):
    cls = get_plugins().runner(name).cls
    options_class = declared_options(cls)
    assert options_class is not None and attrs.has(options_class)
    # The options are nowhere in an __init__ signature: the manager builds them.
    assert "__init__" not in vars(cls)


def test_the_manager_checks_and_builds_the_declared_options():
    backend = get_plugins().runner("docker")
    runner = backend.create({"image": " my-image:1 ", "stop_timeout": 3})
    assert isinstance(runner.options, docker.DockerOptions)
    assert (runner.image, runner.stop_timeout, runner.pull) == ("my-image:1", 3, "missing")
    with pytest.raises(ConfigurationError, match="has no option 'imag'"):
        backend.create({"imag": "x"})
    with pytest.raises(ConfigurationError, match="needs the option 'image'"):
        backend.create({})
    with pytest.raises(ConfigurationError, match="option 'pull' must be one of"):
        backend.create({"image": "x", "pull": "sometimes"})


def test_the_builtins_are_all_listed():
    assert {"dagster_airflow.runners.docker", "dagster_airflow.runners.ecs"} <= set(DEFAULT_PLUGINS)
