"""Secrets stay hidden (issue 23, point 3): what the operator hands a step from Airflow's
connections and variables is registered with Airflow's masker, and the worker redacts it from
everything it writes or forwards. Driven as a careless op would leak a secret: logged, printed,
echoed by a child process, put in an output, quoted by an error."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap

import attrs
import pytest

from dagster_airflow.errors import ConfigurationError
from dagster_airflow.model import (
    REQUEST_ENV_VAR,
    CodeLocation,
    StepRequest,
    StorageSpec,
    dagster_run_id,
)
from dagster_airflow.redaction import SECRET_NAMES_ENV_VAR, Redactor, forms
from dagster_airflow.runners.context import RunContext
from dagster_airflow.runners.subprocess import SubprocessRunner
from dagster_airflow.step_result import FAILURE, SUCCESS, StepError, StepEvent
from dagster_airflow.worker.output_preview import preview_text
from tests.conftest import JOBS, ROOT, run_cli, scaffold

RUN_ID = "3c9d2e1f-4b5a-5c6d-8e7f-0a1b2c3d4e5f"
# A password with both quotes, a backslash, a non-ASCII letter and regex syntax.
PASSWORD = "Wh'at\"a\\s\u00e9cret.*-42"
LOGIN = "login-7f3a9c2e"  # from a variable whose name Airflow does not deem sensitive

HOSTILE = [
    PASSWORD,
    "new\nline\tand tab",
    "\u2028sep\u00a0\u4e2d\u6587\U0001f511",
    "***stars***",
    "back\\slash\\\\",
    "'\"'\"'",
    "x" * 300,
]


def leaks(text: str, secrets=(PASSWORD, LOGIN)) -> list[str]:
    """Every form of the secrets (and each secret's distinctive core) found in ``text``."""
    found = [form for secret in secrets for form in forms(secret) if form in text]
    return found + [core for core in ("s\u00e9cret", "\\u00e9cret", "7f3a9c2e") if core in text]


# -- the worker's redaction, alone ----------------------------------------------------------


@pytest.mark.parametrize("secret", HOSTILE, ids=range(len(HOSTILE)))
def test_every_form_a_line_may_hold_a_hostile_secret_in_is_redacted(secret):
    redactor = Redactor([secret])
    shown = [
        f"plain {secret} end",
        json.dumps({"password": secret}),
        json.dumps({"password": secret}, ensure_ascii=False),
        repr({"password": secret}),
        repr(f"with both ' and \" around {secret}"),
        ascii([secret]),
        repr(secret.encode()),
        f"postgres://user:{__import__('urllib.parse').parse.quote(secret, safe='')}@host/db",
    ]
    for line in shown:
        redacted = redactor.text(line)
        assert "***" in redacted
        assert not [form for form in forms(secret) if form in redacted], (line, redacted)


def test_a_secret_inside_another_or_overlapping_it_leaves_no_piece():
    redactor = Redactor(["abcdef", "xxabcdefyy", "defghi", "bc"])
    assert redactor.text("xxabcdefyy") == "***"
    assert redactor.text("1 abcdefghi 2") == "1 *** 2"  # two secrets that overlap: one mark
    assert redactor.text("xxabcdefzz and bc") == "xx***zz and ***"
    assert redactor.text("nothing secret here") == "nothing secret here"
    assert not Redactor([]) and Redactor([]).text("abc") == "abc"


def test_an_event_is_redacted_in_every_field_and_stays_valid_json():
    secret = 'a"b\\c\u00e9d'
    event = StepEvent(
        "STEP_FAILURE",
        f"failed with {secret}",
        step_key="op",
        metadata={"dsn": f"x:{secret}@h", secret: [secret, 1, None]},
        error=StepError("RuntimeError", f"bad {secret!r}", stack=f"  line {secret}\n", cause=None),
    )
    redacted = Redactor([secret]).event(event)
    line = redacted.to_json()
    assert StepEvent.from_line(line) == redacted
    assert redacted.message == "failed with ***"
    assert redacted.metadata == {"dsn": "x:***@h", "***": ["***", 1, None]}
    assert (redacted.error.message, redacted.error.stack) == ("bad '***'", "  line ***\n")
    assert not [form for form in forms(secret) if form in line]


def test_a_preview_is_redacted_before_it_is_cut():
    secret = "SECRET-hunter2-SECRET"
    # The preview cuts long strings in the middle, where this secret sits.
    value = {"note": "a" * 95 + secret + "b" * 300}
    assert "aSE..." in preview_text(value)  # cut first, a piece of the secret shows
    redacted = preview_text(value, Redactor([secret]).text)
    assert "a**...b" in redacted and "SE" not in redacted and "hunter" not in redacted


def test_the_names_of_secret_variables_must_be_a_json_list():
    environ = {SECRET_NAMES_ENV_VAR: "DB_PASSWORD", "DB_PASSWORD": PASSWORD}
    with pytest.raises(ConfigurationError) as raised:
        Redactor.from_environ(environ)
    assert str(raised.value) == (
        "DAGSTER_AIRFLOW_SECRET_NAMES must be a JSON list of the names of environment variables "
        "that hold secrets, such as '[\"DB_PASSWORD\"]', got 'DB_PASSWORD'; the runner sets it: "
        "unset it where you set it by hand."
    )
    assert str(raised.value) in (ROOT / "docs" / "troubleshooting.md").read_text()
    environ[SECRET_NAMES_ENV_VAR] = '["DB_PASSWORD", "NOT_SET"]'
    assert Redactor.from_environ(environ).text(PASSWORD) == "***"


RELAY = """
import os, sys
from dagster_airflow.redaction import Redactor, redacted_output
secrets = sys.argv[1:]
with redacted_output(Redactor(secrets)):
    for secret in secrets:
        data = f"one byte at a time: {secret} end\\n".encode()
        for i in range(len(data)):
            os.write(1, data[i : i + 1])
        print(f"printed {secret}", flush=True)
        os.write(2, b"no newline at the end: " + secret.encode())
print("after the relay")
"""


def test_the_output_relay_never_lets_a_secret_through_in_pieces():
    secrets = ["multi\nline\nsecret", "caf\u00e9-t\u00eate", "x" * 100]
    done = subprocess.run(
        [sys.executable, "-c", RELAY, *secrets], capture_output=True, timeout=60, check=True
    )
    out = done.stdout.decode()
    assert out.count("one byte at a time: *** end\n") == 3
    assert out.count("printed ***") == 3 and out.endswith("after the relay\n")
    assert not [s for s in secrets if s in out] and "t\u00eate" not in out
    assert "multi" not in out and "secret" not in out


HELD_OPEN = """
import subprocess, sys
from dagster_airflow import redaction
redaction.OUTPUT_DRAIN_SECONDS = 0.5
with redaction.redacted_output(redaction.Redactor(["hunter2-secret"])):
    print("before hunter2-secret", flush=True)
    # A daemon of the step's: it inherits the step's output and holds it open.
    daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(daemon.pid, flush=True)
"""


def test_a_process_that_holds_the_output_open_does_not_hold_the_step():
    done = subprocess.run(
        [sys.executable, "-c", HELD_OPEN], capture_output=True, text=True, timeout=60, check=True
    )
    *lines, pid = done.stdout.splitlines()
    os.kill(int(pid), 9)
    assert lines == [
        "before ***",
        "the rest of the step's output is not shown: a process the step started still holds "
        "its output open after the step ended.",
    ]
    assert lines[-1] in (ROOT / "docs" / "troubleshooting.md").read_text()


# -- the Airflow side: what the worker is told ----------------------------------------------


def test_the_worker_is_told_the_names_never_the_values(tmp_path):
    from dagster_airflow.task import context as task_context

    request = step_request("leak", tmp_path)
    # As the operator does: the runner's options as written, and as Airflow rendered them.
    source = {
        "env": {
            "WAREHOUSE_LOGIN": "{{ var.value.warehouse_login }}",
            "DB_PASSWORD": "{{ conn.warehouse.password }}",
            "REGION": "{{ ds }}",
        }
    }
    rendered = {"env": {"WAREHOUSE_LOGIN": LOGIN, "DB_PASSWORD": PASSWORD, "REGION": "2026-12-07"}}
    task_context.mask_templated(rendered, source)
    from airflow.sdk.log import redact

    # Registered with Airflow's masker, as is and as a JSON or a repr would show it.
    assert redact(f"{LOGIN} {json.dumps([PASSWORD])} {PASSWORD!r}") == "*** [\"***\"] '***'"
    assert redact("2026-12-07") == "2026-12-07"
    credentials = {"AWS_SECRET_ACCESS_KEY": "aws-key-1234", "AWS_REGION": "eu-west-1"}
    context = task_context.for_task(logging.getLogger(__name__), None, credentials)
    step_env = {**rendered["env"], "COLOR": "blue"}
    env = SubprocessRunner.worker_env(request, context, step_env)
    names = json.loads(env[SECRET_NAMES_ENV_VAR])
    assert names == ["AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "WAREHOUSE_LOGIN"]
    assert not leaks(env[SECRET_NAMES_ENV_VAR] + env[REQUEST_ENV_VAR])


# -- the worker, as a runner starts it --------------------------------------------------------


def step_request(step_key: str, tmp_path) -> StepRequest:
    return StepRequest(
        code_location=CodeLocation(python_file=str(JOBS / "secrets.py")),
        job_name="secrets_job",
        step_key=step_key,
        run_id=RUN_ID,
        run_config={},
        storage=StorageSpec("filesystem", {"base_dir": str(tmp_path / "storage")}),
    )


@pytest.mark.parametrize("warm", [False, True], ids=["fresh process", "step server"])
def test_a_step_that_leaks_its_secrets_shows_them_nowhere(warm, tmp_path, task_log):
    runner = SubprocessRunner(env={"DB_PASSWORD": PASSWORD, "WAREHOUSE_LOGIN": LOGIN}, warm=warm)
    # Outside Airflow: a context that deems these two secrets, as Airflow's masker would.
    context = RunContext(log=task_log.logger, is_secret=lambda name, value: "_" in name)
    leaked = runner.run(step_request("leak", tmp_path), context)
    failed = runner.run(step_request("fail", tmp_path), context)

    assert (leaked.status, failed.status) == (SUCCESS, FAILURE)
    assert ("forked by step server" in task_log.text) == warm
    assert leaks(task_log.text) == []
    for line in ("printed: ***", "printed to stderr: '***'", "connecting with ***"):
        assert line in task_log.text
    assert "straight to the descriptor: ***" in task_log.text
    assert "through logging: ***" in task_log.text
    assert failed.error.summary().endswith(
        "caused by RuntimeError: cannot connect to 'postgres://user:***@db/warehouse' with ***"
    )
    for step in ("leak", "fail"):
        event_log = (tmp_path / "storage" / RUN_ID / step / "events.jsonl").read_text()
        assert leaks(event_log) == [] and "***" in event_log
    preview = next(e for e in leaked.events if e.event_type == "HANDLED_OUTPUT").metadata
    assert preview["preview"].startswith("{'dsn': 'postgres://user:***@db/warehouse'")


@pytest.mark.parametrize("warm", [False, True], ids=["fresh process", "step server"])
def test_the_jobs_variables_reach_the_step_before_its_resource_reads_them(warm, tmp_path, task_log):
    request = attrs.evolve(
        step_request("connect", tmp_path),
        code_location=CodeLocation(python_file=str(ROOT / "tests/jobs/project/warehouse.py")),
        job_name="warehouse_job",
    )
    # As the operator hands them over: the DAG's ENVIRONMENT, rendered (and here, unset in the
    # Airflow worker's own environment and in the step server's).
    assert "WAREHOUSE_PASSWORD" not in os.environ
    context = RunContext(log=task_log.logger, job_env={"WAREHOUSE_PASSWORD": PASSWORD})
    result = SubprocessRunner(warm=warm).run(request, context)
    assert result.status == SUCCESS, result.error
    assert ("forked by step server" in task_log.text) == warm
    output = next(e for e in result.events if e.event_type == "HANDLED_OUTPUT")
    assert repr(fingerprint(PASSWORD)) in output.metadata["preview"]
    assert leaks(task_log.text) == []


def test_a_malformed_list_of_secret_names_fails_the_step_before_it_runs(tmp_path):
    env = {
        **os.environ,
        REQUEST_ENV_VAR: step_request("leak", tmp_path).to_json(),
        SECRET_NAMES_ENV_VAR: "DB_PASSWORD",
        "DB_PASSWORD": PASSWORD,
    }
    done = subprocess.run(
        [sys.executable, "-m", "dagster_airflow", "execute-step"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout.startswith(
        "dagster-airflow execute-step: DAGSTER_AIRFLOW_SECRET_NAMES must be a JSON list"
    )
    assert not (tmp_path / "storage").exists()


# -- through Airflow --------------------------------------------------------------------------

STEP_VIEW_CLIENT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from fastapi.testclient import TestClient
    from airflow.api_fastapi.app import create_app

    client = TestClient(create_app())
    home = Path(sys.argv[1])
    password = json.loads(
        (home / "simple_auth_manager_passwords.json.generated").read_text()
    )["admin"]
    token = client.post("/auth/token", json={"username": "admin", "password": password}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    dag_id, run_id, *task_ids = sys.argv[2:]
    for task_id in task_ids:
        path = f"{dag_id}/{run_id}/{task_id}"
        html = client.get(f"/dagster-airflow/steps/{path}", headers=headers)
        data = client.get(f"/dagster-airflow/api/steps/{path}", headers=headers)
        assert html.status_code == 200 and data.status_code == 200, (html.text, data.text)
        print(html.text)
        print(data.text)
    """
)


@pytest.mark.airflow
def test_a_connections_password_stays_hidden_through_airflow(airflow_home, tmp_path):
    from dagster_airflow.testing import AirflowHome

    storage = tmp_path / "storage"
    connection = {"conn_type": "postgres", "host": "db", "login": "user", "password": PASSWORD}
    home = AirflowHome(
        airflow_home.path,
        env={
            "AIRFLOW_CONN_WAREHOUSE": json.dumps(connection),
            "AIRFLOW_VAR_WAREHOUSE_LOGIN": LOGIN,
        },
    )
    env_option = (
        "env={DB_PASSWORD: '{{ conn.warehouse.password }}', "
        "WAREHOUSE_LOGIN: '{{ var.value.warehouse_login }}'}"
    )
    text = scaffold(
        "secrets_job", "-f", str(JOBS / "secrets.py"), "--dag-id", "secrets_e2e",
        "--runner-option", env_option, "--storage-option", f"base_dir={storage}",
    )  # fmt: skip
    assert not leaks(text)
    home.install(text, "secrets_e2e.py")
    result = home.dags_test("secrets_e2e")
    assert result.states == {"leak": "success", "fail": "failed"}, result.output[-3000:]

    # The task log (what `dags test` printed of each task), the op's lines in it, redacted.
    assert leaks(result.output) == [], result.output[-3000:]
    assert "printed: ***" in result.task_log("leak")
    assert "with ***" in result.task_log("fail")
    # The rendered runner option, as Airflow's "Rendered Template" view shows it.
    with sqlite3.connect(home.path / "airflow.db") as db:
        rendered = db.execute(
            "SELECT task_id, rendered_fields FROM rendered_task_instance_fields WHERE dag_id = ?",
            ("secrets_e2e",),
        ).fetchall()
    assert len(rendered) == 2 and "WAREHOUSE_LOGIN" in str(rendered)
    assert leaks(str(rendered)) == [], rendered
    # The event log next to the outputs.
    root = storage / dagster_run_id("secrets_e2e", result.run_id)
    for step in ("leak", "fail"):
        assert leaks((root / step / "events.jsonl").read_text()) == []
    # The step view, as the Airflow UI shows it.
    view = ("secrets_e2e", result.run_id, "leak", "fail")
    done = subprocess.run(
        [sys.executable, "-c", STEP_VIEW_CLIENT, str(home.path), *view],
        env=home.env,
        capture_output=True,
        text=True,
        cwd=home.path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "connecting with ***" in done.stdout and "postgres://user:***@db" in done.stdout
    assert leaks(done.stdout) == []
    # What `dagster-airflow results` shows of the run.
    for args in ([], ["--json"], ["--show", "leak.events"], ["--show", "fail.events"]):
        shown = run_cli("results", "secrets_e2e", result.run_id, *args, env=home.env)
        assert shown.returncode == 0, shown.stderr
        assert leaks(shown.stdout + shown.stderr) == [], args


# -- a resource's EnvVar, from a connection (issue 25, point 4) ------------------------------


def fingerprint(password: str) -> str:
    """What tests/jobs/project/warehouse.py's op says of the password it saw."""
    return f"{len(password)}:{__import__('hashlib').sha256(password.encode()).hexdigest()[:12]}"


@pytest.mark.airflow
def test_a_resources_env_var_comes_from_a_connection_and_shows_nowhere(airflow_home, tmp_path):
    from dagster_airflow.environment import unprovided_sentence
    from dagster_airflow.testing import AirflowHome

    storage = tmp_path / "storage"
    connection = {"conn_type": "postgres", "host": "db", "login": "loader", "password": PASSWORD}
    home = AirflowHome(airflow_home.path, env={"AIRFLOW_CONN_WAREHOUSE": json.dumps(connection)})
    # Nowhere set: not where the scaffold runs, not where Airflow runs the steps.
    unset = {k: v for k, v in os.environ.items() if k != "WAREHOUSE_PASSWORD"}
    home.env.pop("WAREHOUSE_PASSWORD", None)
    project = str(ROOT / "tests" / "jobs" / "project" / "definitions.py")
    common = ("warehouse_job", "-f", project, "--storage-option", f"base_dir={storage}")
    template = "{{ conn.warehouse.password }}"
    text = scaffold(
        *common, "--dag-id", "warehouse_e2e", "--env", f"WAREHOUSE_PASSWORD={template}", env=unset
    )
    assert 'ENVIRONMENT = {\n    "WAREHOUSE_PASSWORD": "{{ conn.warehouse.password }}",\n}' in text
    assert '"environment": ENVIRONMENT,' in text and not leaks(text)
    unprovided = scaffold(*common, "--dag-id", "warehouse_unprovided", env=unset)
    assert 'ENVIRONMENT = {\n    "WAREHOUSE_PASSWORD": None,\n}' in unprovided
    home.install(text, "warehouse_e2e.py")
    home.install(unprovided, "warehouse_unprovided.py")

    result = home.dags_test("warehouse_e2e")
    assert result.states == {"connect": "success", "report": "success"}, result.output[-3000:]
    # The op saw the connection's password (its length and hash), and nothing shows it: the
    # task log, the rendered fields (Airflow's "Rendered Template" view), the XComs, the events.
    assert f"connected, password fingerprint {fingerprint(PASSWORD)}" in result.output
    assert leaks(result.output) == [], result.output[-3000:]
    with sqlite3.connect(home.path / "airflow.db") as db:
        rendered = db.execute(
            "SELECT rendered_fields FROM rendered_task_instance_fields WHERE dag_id = ?",
            ("warehouse_e2e",),
        ).fetchall()
    assert len(rendered) == 2 and all('"WAREHOUSE_PASSWORD": "***"' in r[0] for r in rendered)
    assert leaks(str(rendered)) == [] and leaks(json.dumps(result.xcoms)) == []
    root = storage / dagster_run_id("warehouse_e2e", result.run_id)
    for step in ("connect", "report"):
        assert leaks((root / step / "events.jsonl").read_text()) == []
    for args in ([], ["--json"], ["--show", "connect.events"], ["--show", "report"]):
        shown = run_cli("results", "warehouse_e2e", result.run_id, *args, env=home.env)
        assert shown.returncode == 0, shown.stderr
        assert leaks(shown.stdout + shown.stderr) == [], args
    # Not given: the first task fails at once with one sentence, and no step starts.
    failed = home.dags_test("warehouse_unprovided")
    assert failed.states == {"connect": "failed", "report": "upstream_failed"}
    sentence = unprovided_sentence(["WAREHOUSE_PASSWORD"], "warehouse_job")
    assert f"task 'connect': {sentence}" in failed.task_log("connect")
    assert "Dagster step" not in failed.task_log("connect")
    assert sentence in (ROOT / "docs" / "troubleshooting.md").read_text()
