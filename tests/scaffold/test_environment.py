"""The DAG file's ENVIRONMENT (issue 25, point 4): the variables a job reads, written as a
mapping the user fills, from `--env NAME=VALUE`; the scaffold never needs one set."""

from __future__ import annotations

import ast
import os

import pytest

from tests.conftest import ROOT, run_cli, scaffold

WAREHOUSE = str(ROOT / "tests" / "jobs" / "project" / "warehouse.py")
TEMPLATE = "{{ conn.warehouse.password }}"
# The scaffold runs where no secret is set.
UNSET = {k: v for k, v in os.environ.items() if k != "WAREHOUSE_PASSWORD"}


def environment_of(text: str) -> dict:
    """ENVIRONMENT as the file holds it (read, never imported)."""
    tree = ast.parse(text)
    (value,) = [
        n.value
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "ENVIRONMENT"
    ]
    return ast.literal_eval(value)


def test_a_variable_unset_here_is_written_unfilled_and_check_keeps_working(tmp_path):
    text = scaffold("warehouse_job", "-f", WAREHOUSE, env=UNSET)
    assert environment_of(text) == {"WAREHOUSE_PASSWORD": None}
    assert '    "environment": ENVIRONMENT,\n' in text
    assert "None: not provided yet, and each task fails at once until" in text
    dag = tmp_path / "warehouse_job.py"
    dag.write_text(text)
    done = run_cli("check", str(dag), env=UNSET)
    assert (done.returncode, done.stdout) == (0, f"{dag}: matches its job.\n"), done.stderr
    # Filled in by hand: still the job's file. Left out: the job reads a variable it lacks.
    dag.write_text(
        text.replace('"WAREHOUSE_PASSWORD": None', f'"WAREHOUSE_PASSWORD": "{TEMPLATE}"')
    )
    assert run_cli("check", str(dag), env=UNSET).returncode == 0
    dag.write_text(text.replace('    "WAREHOUSE_PASSWORD": None,\n', ""))
    done = run_cli("check", str(dag), env=UNSET)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == (
        "environment variable added: the job reads 'WAREHOUSE_PASSWORD', which ENVIRONMENT does "
        "not name; add it there (or scaffold again with --env WAREHOUSE_PASSWORD=...) unless "
        "the step's own environment provides it"
    )


def test_env_fills_the_mapping_with_templates_and_adds_names_of_its_own():
    text = scaffold(
        "warehouse_job", "-f", WAREHOUSE,
        "--env", f"WAREHOUSE_PASSWORD={TEMPLATE}",
        "--env", "WAREHOUSE_REGION=eu-west-1",
        "--env", "API_TOKEN={{ var.value.api_token }}",
        env=UNSET,
    )  # fmt: skip
    assert environment_of(text) == {
        "WAREHOUSE_PASSWORD": TEMPLATE,  # the job's first, in the order Dagster reads them
        "WAREHOUSE_REGION": "eu-west-1",
        "API_TOKEN": "{{ var.value.api_token }}",
    }


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (
            "1BAD=x",
            "--env '1BAD' does not name an environment variable; write it as --env NAME=VALUE "
            "with NAME of letters, digits and '_', not starting with a digit, such as "
            "--env WAREHOUSE_PASSWORD='{{ conn.warehouse.password }}'.",
        ),
        ("NO_VALUE", "--env 'NO_VALUE' does not name an environment variable; write it as"),
        (
            "WAREHOUSE_PASSWORD=hunter2-typed",
            "--env WAREHOUSE_PASSWORD= gives a secret's variable a literal value, which the DAG "
            "file and its SCAFFOLD_COMMAND would keep in plain text; give an Airflow template "
            "instead, such as --env WAREHOUSE_PASSWORD='{{ conn.NAME.password }}' or "
            "'{{ var.value.NAME }}'.",
        ),
    ],
    ids=["name", "no value", "literal secret"],
)
def test_a_wrong_env_flag_is_one_sentence_and_writes_nothing(flag, message):
    done = run_cli("scaffold", "warehouse_job", "-f", WAREHOUSE, "--env", flag, env=UNSET)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"dagster-airflow scaffold: {message}")
    assert len(done.stderr.splitlines()) == 1 and "hunter2" not in done.stderr
    troubleshooting = (ROOT / "docs" / "troubleshooting.md").read_text()
    assert message.replace("'NO_VALUE'", "'1BAD'") in troubleshooting


def test_the_graphql_runner_refuses_env_and_writes_no_mapping():
    runner = ["--runner", "graphql", "--runner-option", "url=http://127.0.0.1:1"]
    args = ["warehouse_job", "-f", WAREHOUSE, *runner, "--storage-option", "bucket=steps"]
    done = run_cli("scaffold", *args, "--env", f"WAREHOUSE_PASSWORD={TEMPLATE}", env=UNSET)
    message = (
        "--env WAREHOUSE_PASSWORD is for steps that Airflow starts, but the graphql runner's "
        "steps run in the Dagster deployment, which reads its own environment; set the "
        "variable there (its code server and run workers) and leave --env out."
    )
    assert (done.returncode, done.stderr) == (2, f"dagster-airflow scaffold: {message}\n")
    assert message in (ROOT / "docs" / "troubleshooting.md").read_text()
    assert "ENVIRONMENT" not in scaffold(*args, env=UNSET)
