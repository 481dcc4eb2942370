"""`dagster-airflow results DAG_ID RUN_ID`: a DAG run's results found by the Airflow run id, on
the filesystem (a real Airflow run), S3 (moto) and GCS (the emulator), with the credentials of
the DAG's Airflow connection."""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import logging
import os
import pickle
import re
import shutil
import urllib.parse
import uuid
from pathlib import Path

import boto3
import pytest
import yaml

from dagster_airflow.model import CodeLocation, StepRequest, StorageSpec, dagster_run_id
from dagster_airflow.runners.subprocess import SubprocessRunner
from dagster_airflow.scaffold.dag_file import parse_dag_text
from dagster_airflow.storage.gcs import EMULATOR_ENV
from dagster_airflow.task.connections import from_environment, parse_uri
from dagster_airflow.testing.run_context import run_context_for
from tests.conftest import EXAMPLES, ROOT, run_cli
from tests.e2e.test_e2e_subprocess import dagster_in_process
from tests.ui.test_airflow_plugin import default_args

pytestmark = pytest.mark.airflow

STEPS = ["multiply_the_word", "count_letters", "reverse_word", "count_reversed", "summarize"]
AIRFLOW_RUN = "manual__2026-12-01T10:00:00+00:00"


def expected(node: str):
    from examples.demo import demo_pipeline

    run_config = yaml.safe_load((EXAMPLES / "demo.yml").read_text())
    return dagster_in_process(demo_pipeline, run_config, node)


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any AWS or Airflow connection variable: the command must get
    its credentials from the connection named here."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "AIRFLOW_CONN_", EMULATOR_ENV))
    }
    return {**env, **extra}


def results(*args: str, env: dict[str, str], cwd: Path | None = None):
    return run_cli("results", *args, env=env, **({"cwd": cwd} if cwd else {}))


# -- filesystem, through a real Airflow run -------------------------------------------------------


@pytest.fixture(scope="module")
def fs_run(airflow_home, tmp_path_factory):
    """The demo scaffolded from a project directory (no location flag) and run by Airflow."""
    root = tmp_path_factory.mktemp("results_project")
    shutil.copy(EXAMPLES / "demo.py", root / "demo.py")
    shutil.copy(EXAMPLES / "demo.yml", root / "env.yml")
    (root / "pyproject.toml").write_text('[tool.dagster]\nmodule_name = "demo"\n')
    storage_dir = root / "storage"
    done = run_cli(
        *("scaffold", "demo_pipeline", "-e", "env.yml", "--dag-id", "results_fs"),
        *("--storage-option", f"base_dir={storage_dir}", "--install"),
        cwd=root,
        env=airflow_home.env,
    )
    assert done.returncode == 0, done.stderr
    result = airflow_home.dags_test("results_fs")
    assert result.succeeded, result.output[-3000:]
    return airflow_home, result.run_id, storage_dir


def test_the_table_lists_each_step_its_outputs_and_its_event_log(fs_run):
    home, run_id, storage_dir = fs_run
    done = results("results_fs", run_id, env=home.env)
    assert done.returncode == 0, done.stderr
    dagster_id = dagster_run_id("results_fs", run_id)
    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"DAG 'results_fs', Airflow run {run_id!r}: Dagster run {dagster_id} in "
        f"{storage_dir / dagster_id}"
    )
    assert re.split(r"\s{2,}", lines[2]) == ["STEP", "STATUS", "OUTPUT", "SIZE", "WRITTEN", "URI"]
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[3:]]
    assert [r[0] for r in rows if len(r) == 6] == STEPS
    for step in STEPS:
        uri = storage_dir / dagster_id / step / "result"
        (row,) = [r for r in rows if r[-1] == str(uri)]
        assert row[-4:-2] == ["result", f"{uri.stat().st_size} B"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", row[-2])
        (log_row,) = [r for r in rows if r[-1] == str(uri.with_name("events.jsonl"))]
        assert re.fullmatch(r"events\.jsonl \(\d+\)", log_row[-4])
    assert all(r[1] == "success" for r in rows if len(r) == 6)


def test_json_gives_the_same_for_scripts(fs_run):
    home, run_id, storage_dir = fs_run
    done = results("results_fs", run_id, "--json", env=home.env)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    dagster_id = dagster_run_id("results_fs", run_id)
    assert data["dagster_run_id"] == dagster_id
    assert data["storage"] == {"name": "filesystem", "uri": str(storage_dir / dagster_id)}
    assert [s["step_key"] for s in data["steps"]] == STEPS
    summarize = data["steps"][-1]
    path = storage_dir / dagster_id / "summarize" / "result"
    assert summarize["status"] == "success"
    assert summarize["outputs"] == [
        {
            "name": "result",
            "uri": str(path),
            "size": path.stat().st_size,
            "written": summarize["outputs"][0]["written"],
        }
    ]
    events = [e["event_type"] for e in summarize["event_log"]["events"]]
    assert events[-1] == "STEP_SUCCESS"
    assert {"STEP_START", "LOADED_INPUT", "HANDLED_OUTPUT"} <= set(events)


def test_show_prints_the_value_dagster_computes_and_says_it_unpickles_here(fs_run):
    home, run_id, _ = fs_run
    done = results("results_fs", run_id, "--show", "summarize", env=home.env)
    assert done.returncode == 0, done.stderr
    assert eval(done.stdout) == expected("summarize")
    assert done.stderr.startswith("Unpickling ")
    assert "summarize/result in this Python" in done.stderr
    named = results("results_fs", run_id, "--show", "multiply_the_word.result", env=home.env)
    assert named.stdout == "'barbar'\n"


def test_show_json_and_the_event_log(fs_run):
    home, run_id, _ = fs_run
    done = results("results_fs", run_id, "--show", "count_letters", "--json", env=home.env)
    assert json.loads(done.stdout)["value"] == expected("count_letters")
    events = results("results_fs", run_id, "--show", "summarize.events", env=home.env)
    assert events.returncode == 0, events.stderr
    assert "STEP_START" in events.stdout and "Letter counts: {'b': 2, 'a': 2, 'r': 2}" in (
        events.stdout
    )


def test_dag_file_instead_of_the_dags_folder(fs_run, tmp_path):
    home, run_id, _ = fs_run
    (dag_file,) = [p for p in home.dags_folder.glob("*.py") if "results_fs" in p.read_text()]
    env = {**home.env, "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path)}
    done = results("results_fs", run_id, "--dag-file", str(dag_file), "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["dag_file"] == str(dag_file)
    wrong = results("other_dag", run_id, "--dag-file", str(dag_file), env=env)
    assert wrong.returncode == 2
    assert wrong.stderr == (
        f"dagster-airflow results: the DAG file {str(dag_file)!r} defines DAG 'results_fs', "
        "not 'other_dag'; pass that DAG's id or its own file.\n"
    )


def test_unknown_dag_run_step_and_output_are_one_sentence(fs_run):
    home, run_id, storage_dir = fs_run
    folder = home.dags_folder

    def error(*args):
        done = results(*args, env=home.env)
        assert done.returncode == 2, done.stdout
        assert done.stderr.count("\n") == 1, done.stderr
        return done.stderr.removeprefix("dagster-airflow results: ").rstrip("\n")

    assert error("no_such_dag", run_id) == (
        f"no DAG 'no_such_dag' in the dags folder {str(folder)!r}: no file scaffolded by "
        "dagster-airflow there has dag_id='no_such_dag'; check the DAG id, or pass --dag-file "
        "with its file (--dags-folder, AIRFLOW__CORE__DAGS_FOLDER or AIRFLOW_HOME for another "
        "folder)."
    )
    missing_run = "manual__1999-01-01T00:00:00+00:00"
    root = storage_dir / dagster_run_id("results_fs", missing_run)
    assert error("results_fs", missing_run) == (
        f"no results of DAG 'results_fs' run {missing_run!r} under {str(root)!r}; check the "
        "run id (`airflow dags list-runs results_fs` lists them; they look like "
        "manual__2026-11-25T10:00:00+00:00)."
    )
    assert error("results_fs", run_id, "--show", "summarise") == (
        "DAG 'results_fs' has no step 'summarise'; its steps are: " + ", ".join(STEPS) + "."
    )
    assert error("results_fs", run_id, "--show", "summarize.total") == (
        "step 'summarize' wrote no output 'total' in this run; its outputs are: 'result' "
        "(write --show summarize.OUTPUT)."
    )


# -- S3 and GCS: the real worker writes, the command reads through the DAG's connection -----------


def scaffold_to(folder: Path, dag_id: str, *storage_args: str) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    done = run_cli(
        *("scaffold", "demo_pipeline", "-f", str(EXAMPLES / "demo.py")),
        *("-e", str(EXAMPLES / "demo.yml"), "--dag-id", dag_id, *storage_args),
        *("--install", "--dags-folder", str(folder)),
    )
    assert done.returncode == 0, done.stderr
    (path,) = folder.glob("*.py")
    text = path.read_text()
    # The tasks' run config is the file's RUN_CONFIG (the DAG's macros), not in DEFAULT_ARGS.
    return {
        **default_args(text),
        "run_config": parse_dag_text(text, str(path)).literals["RUN_CONFIG"],
    }


def run_steps(args: dict, dag_id: str, env: dict[str, str]) -> None:
    """Each step of the DAG run as its task would run it: the subprocess runner's worker."""
    log = logging.getLogger(f"results.{dag_id}")
    for step in STEPS:
        request = StepRequest(
            code_location=CodeLocation.from_dict(args["code_location"]),
            job_name="demo_pipeline",
            step_key=step,
            run_id=dagster_run_id(dag_id, AIRFLOW_RUN),
            run_config=args["run_config"],
            storage=StorageSpec.from_value(args["storage"]),
        )
        result = SubprocessRunner().run(request, run_context_for(request, log, env))
        assert result.succeeded, result.error


def test_s3_results_with_the_credentials_of_the_dags_connection(moto_server, tmp_path):
    bucket = f"results-{uuid.uuid4().hex[:8]}"
    boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    dags = tmp_path / "dags"
    args = scaffold_to(
        dags,
        "results_s3",
        *("--storage", "s3", "--storage-option", f"bucket={bucket}"),
        *("--storage-option", "aws_conn_id=results_aws"),
    )
    run_steps(
        args,
        "results_s3",
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": moto_server,
        },
    )
    extra = urllib.parse.urlencode({"endpoint_url": moto_server, "region_name": "us-east-1"})
    env = clean_env(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW_CONN_RESULTS_AWS=f"aws://AKIARESULTS:s3cr3t@/?{extra}",
    )
    done = results("results_s3", AIRFLOW_RUN, "--json", env=env)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    dagster_id = dagster_run_id("results_s3", AIRFLOW_RUN)
    assert data["storage"] == {
        "name": "s3",
        "uri": f"s3://{bucket}/dagster-airflow/{dagster_id}",
    }
    assert [s["status"] for s in data["steps"]] == ["success"] * 5
    assert data["steps"][0]["outputs"][0]["uri"] == (
        f"s3://{bucket}/dagster-airflow/{dagster_id}/multiply_the_word/result"
    )
    shown = results("results_s3", AIRFLOW_RUN, "--show", "summarize", env=env)
    assert eval(shown.stdout) == expected("summarize")

    without = results("results_s3", AIRFLOW_RUN, env={**env, "AIRFLOW_CONN_RESULTS_AWS": ""})
    assert without.returncode == 2
    assert "results_aws" in without.stderr


def test_gcs_results_on_the_emulator(gcs_emulator, tmp_path, monkeypatch):
    from dagster_airflow.storage.gcs import GCSStorage

    bucket = f"results-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(EMULATOR_ENV, gcs_emulator)
    GCSStorage(bucket=bucket).client.create_bucket(bucket)
    dags = tmp_path / "dags"
    args = scaffold_to(
        dags, "results_gcs", "--storage", "gcs", "--storage-option", f"bucket={bucket}"
    )
    run_steps(args, "results_gcs", {EMULATOR_ENV: gcs_emulator})
    env = clean_env(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        **{EMULATOR_ENV: gcs_emulator},
    )
    done = results("results_gcs", AIRFLOW_RUN, env=env)
    assert done.returncode == 0, done.stderr
    dagster_id = dagster_run_id("results_gcs", AIRFLOW_RUN)
    assert f"gs://{bucket}/dagster-airflow/{dagster_id}/summarize/result" in done.stdout
    shown = results("results_gcs", AIRFLOW_RUN, "--show", "count_reversed", env=env)
    assert eval(shown.stdout) == expected("count_reversed")


def test_storage_md_shows_the_table_the_command_prints():
    """docs/storage.md's example, for the objects it shows (its "..." stands for three steps)."""
    from dagster_airflow.scaffold import results as found

    text = (ROOT / "docs" / "storage.md").read_text()
    shown = re.search(r"```\n\$ dagster-airflow results (.*?)```", text, re.S).group(1)
    root = "s3://my-dagster-bucket/dagster-airflow/6f1c..."
    written = datetime.datetime(2026, 11, 25, 10, 0, 4, tzinfo=datetime.UTC).timestamp()

    def step(key, size, log_size, events, at):
        return found.StepResults(
            key,
            "success",
            (found.StoredObject("result", f"{root}/{key}/result", size, at),),
            found.StoredObject("events.jsonl", f"{root}/{key}/events.jsonl", log_size, at),
            tuple(range(events)),
        )

    run = found.RunResults(
        found.DagFile(Path("demo.py"), "demo_pipeline", {}, ()),
        "manual__2026-11-25T10:00:00+00:00",
        "6f1c...",
        root,
        (
            step("multiply_the_word", 21, 3174, 10, written),
            step("summarize", 88, 4403, 14, written + 15),
        ),
    )
    lines = shown.splitlines()
    assert lines[0] == "demo_pipeline manual__2026-11-25T10:00:00+00:00"
    assert found.table(run) == "\n".join(line for line in lines[1:] if line != "...") + "\n"


def test_storage_md_python_example_reads_a_run(moto_server, monkeypatch):
    """docs/storage.md's Python way, on moto, for a run the worker wrote."""
    from dagster_airflow.storage.s3 import S3Storage

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": moto_server,
    }.items():
        monkeypatch.setenv(name, value)
    bucket = f"docs-{uuid.uuid4().hex[:8]}"
    storage = S3Storage(bucket=bucket)
    storage.client.create_bucket(Bucket=bucket)
    run_id = dagster_run_id("demo_pipeline", "manual__2026-11-25T10:00:00+00:00")
    value = pickle.dumps({"total": 6})
    storage.put_bytes(storage.key(run_id, "summarize", "result"), value)
    text = (ROOT / "docs" / "storage.md").read_text().split("## Browsing", 1)[1]
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(code.replace("my-dagster-bucket", bucket), {})
    assert printed.getvalue() == (
        f"s3://{bucket}/dagster-airflow/{run_id}/summarize/result {len(value)}\n{{'total': 6}}\n"
    )


# -- connections outside a task ------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "aws://AKIAEXAMPLE:se%2Fcr%3Det@/?region_name=eu-west-1&endpoint_url=http%3A%2F%2F127.0.0.1%3A9000",
        "docker://deploy-bot:TOKEN@registry.example.com:5000/team",
        "google-cloud-platform://?__extra__=%7B%22project%22%3A+%22p%22%2C+%22key_path%22%3A+%22%2Fk.json%22%7D",
        "http://https%3A%2F%2Fexample.com:443",
        "postgresql://user:pw@db:5432/airflow?sslmode=require",
    ],
)
def test_connection_uris_parse_as_airflow_parses_them(uri):
    """Without Airflow installed, AIRFLOW_CONN_* is read here: the same fields as Airflow's."""
    from airflow.models.connection import Connection

    theirs = Connection(conn_id="x", uri=uri)
    assert parse_uri(uri) == {
        "conn_type": theirs.conn_type,
        "host": theirs.host,
        "port": theirs.port,
        "login": theirs.login,
        "password": theirs.password,
        "schema": theirs.schema,
        "extra": theirs.extra_dejson,
    }


def test_json_connections_and_missing_ones_from_the_environment(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_AS_JSON",
        json.dumps({"conn_type": "aws", "login": "k", "password": "s", "extra": {"a": 1}}),
    )
    assert from_environment("as_json") == {
        "conn_type": "aws",
        "host": None,
        "port": None,
        "login": "k",
        "password": "s",
        "schema": None,
        "extra": {"a": 1},
    }
    monkeypatch.delenv("AIRFLOW_CONN_NOT_THERE", raising=False)
    assert from_environment("not_there") is None


def test_reading_results_imports_neither_side_until_a_connection_or_a_value_is_needed():
    """The command reads a DAG file and a storage with neither Airflow nor Dagster imported."""
    import subprocess
    import sys

    code = (
        "import sys, dagster_airflow.scaffold.results, dagster_airflow.task.connections\n"
        "import dagster_airflow.cli\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'airflow', 'dagster'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n"
