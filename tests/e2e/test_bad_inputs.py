"""Bad inputs, as a new user makes them: each is one sentence naming the thing, never a traceback.

Three tables: flags given to `dagster-airflow scaffold` (exit code 2, nothing written), edits
of a scaffolded DAG file (the option classes the operator builds its runner and storage from),
and faults at run time (what `dagster-airflow execute-step` reports as the step's failure).
docs/troubleshooting.md lists these messages and what each means.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from dagster_airflow.errors import DagsterAirflowError
from dagster_airflow.model import CodeLocation, StepRequest, StorageSpec
from tests.conftest import EXAMPLES, JOBS, run_cli

DEMO = ["demo_pipeline", "-f", str(EXAMPLES / "demo.py"), "-e", str(EXAMPLES / "demo.yml")]
RUN_ID = "3f2b1c4d-5e6f-5a7b-8c9d-0e1f2a3b4c5d"


def runner(name: str, *options: str) -> list[str]:
    return [*DEMO, "--runner", name, *(a for o in options for a in ("--runner-option", o))]


def storage(name: str, *options: str) -> list[str]:
    return [*DEMO, "--storage", name, *(a for o in options for a in ("--storage-option", o))]


DOCKER = ("image=my-image:1.0",)
ECS = ("cluster=c", "task_definition=t:1")
S3 = ("bucket=my-bucket",)

# Nine lines of YAML that stand for a billion values: each list holds the one before it ten times.
ALIAS_BOMB = ["a: &a [x, x, x, x, x, x, x, x, x, x]"] + [
    f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
]

# (id, scaffold arguments; {tmp} is a fresh folder holding a_file and the workspaces, expected
# part of the one line on standard error)
SCAFFOLD_CASES = [
    # values of runner options
    (
        "kill-timeout-not-a-number",
        runner("subprocess", "kill_timeout=soon"),
        "the subprocess runner's option 'kill_timeout' must be a number of seconds above 0, "
        "got 'soon'; write it as kill_timeout=30.",
    ),
    (
        "kill-timeout-negative",
        runner("subprocess", "kill_timeout=-1"),
        "option 'kill_timeout' must be a number of seconds above 0, got -1",
    ),
    (
        "env-a-list",
        runner("subprocess", "env=[a,b]"),
        "the subprocess runner's option 'env' must be a mapping of variable names to values, "
        "got ['a', 'b']",
    ),
    (
        "env-invalid-yaml",
        runner("subprocess", "env={A: [}"),
        "--runner-option 'env={A: [}' has a value that is not valid YAML",
    ),
    (
        "python-a-number",
        runner("subprocess", "python=3"),
        "the subprocess runner's option 'python' must be a non-empty string, got 3",
    ),
    (
        "docker-pull-sometimes",
        runner("docker", *DOCKER, "pull=sometimes"),
        "the docker runner's option 'pull' must be one of missing, always, never, got 'sometimes'",
    ),
    (
        "docker-mounts-not-a-list",
        runner("docker", *DOCKER, "mounts=/data:/data"),
        "option 'mounts' must be a list of mounts, got '/data:/data'",
    ),
    (
        "docker-mount-malformed",
        runner("docker", *DOCKER, "mounts=[/data]"),
        "the docker runner's mount '/data' is not understood",
    ),
    (
        "docker-timeout-negative",
        runner("docker", *DOCKER, "timeout=-5"),
        "the docker runner's option 'timeout' must be a number of seconds above 0, got -5",
    ),
    (
        "docker-command-a-string",
        runner("docker", *DOCKER, "command=dagster-airflow execute-step"),
        "the docker runner's option 'command' must be a list of strings",
    ),
    (
        "docker-environment-a-list",
        runner("docker", *DOCKER, "environment=[A=1]"),
        "the docker runner's option 'environment' must be a mapping",
    ),
    ("docker-no-image", runner("docker"), "runner 'docker' needs the option 'image'"),
    (
        "ecs-launch-type-lower-case",
        runner("ecs", *ECS, "launch_type=fargate"),
        "the ecs runner's option 'launch_type' must be one of FARGATE, EC2, EXTERNAL, got "
        "'fargate'; write launch_type=FARGATE.",
    ),
    (
        "ecs-launch-type-and-capacity-providers",
        runner(
            "ecs",
            *ECS,
            "launch_type=FARGATE",
            "capacity_provider_strategy=[{capacityProvider: FARGATE_SPOT}]",
        ),
        "the ecs runner got both launch_type 'FARGATE' and capacity_provider_strategy",
    ),
    (
        "ecs-poll-interval-zero",
        runner("ecs", *ECS, "poll_interval=0"),
        "the ecs runner's option 'poll_interval' must be a number of seconds above 0, got 0",
    ),
    (
        "ecs-storage-credentials",
        runner("ecs", *ECS, "storage_credentials=both"),
        "option 'storage_credentials' must be one of task_role, environment, got 'both'",
    ),
    (
        "ecs-network-without-subnets",
        runner("ecs", *ECS, "network_configuration={security_groups: [sg-1]}"),
        "network_configuration needs a list of 'subnets'",
    ),
    (
        "graphql-url-without-scheme",
        runner("graphql", "url=localhost:3000"),
        "the graphql runner's option 'url' must be an http(s) address, got 'localhost:3000'",
    ),
    (
        "graphql-poll-interval-words",
        runner("graphql", "url=http://dagster:3000", "poll_interval=fast"),
        "the graphql runner's option 'poll_interval' must be a number of seconds above 0",
    ),
    # values of storage options
    (
        "base-dir-a-list",
        storage("filesystem", "base_dir=[a, b]"),
        "the filesystem storage's option 'base_dir' must be a path, got ['a', 'b']",
    ),
    (
        "base-dir-a-file",
        storage("filesystem", "base_dir={tmp}/a_file"),
        "the filesystem storage's option 'base_dir' '{tmp}/a_file' is a file, not a folder",
    ),
    (
        "base-dir-under-a-file",
        storage("filesystem", "base_dir={tmp}/a_file/outputs"),
        "'base_dir' '{tmp}/a_file/outputs' cannot be created: '{tmp}/a_file' is a file",
    ),
    (
        "s3-bucket-a-url",
        storage("s3", "bucket=s3://my-bucket/outputs"),
        "the s3 storage's option 'bucket' must be a bucket name, got 's3://my-bucket/outputs'; "
        "write bucket='my-bucket' (a name, not a URL) and put any path in 'prefix'.",
    ),
    (
        "s3-bucket-upper-case",
        storage("s3", "bucket=My_Bucket"),
        "the s3 storage's option 'bucket' must be a bucket name, got 'My_Bucket'; S3 bucket "
        "names have 3 to 63",
    ),
    ("s3-bucket-too-short", storage("s3", "bucket=ab"), "must be a bucket name, got 'ab'"),
    (
        "s3-bucket-an-ip-address",
        storage("s3", "bucket=192.168.1.1"),
        "must be a bucket name, got '192.168.1.1'",
    ),
    ("s3-no-bucket", storage("s3"), "storage 's3' needs the option 'bucket'"),
    (
        "s3-endpoint-without-scheme",
        storage("s3", *S3, "endpoint_url=localhost:9000"),
        "the s3 storage's option 'endpoint_url' must be an http(s) address, got 'localhost:9000'",
    ),
    (
        "s3-prefix-escaping",
        storage("s3", *S3, "prefix=../other-team"),
        "the s3 storage's option 'prefix' must be a key prefix with no empty, '.' or '..' "
        "part, got '../other-team'",
    ),
    (
        "gcs-bucket-a-url",
        storage("gcs", "bucket=gs://my-bucket"),
        "the gcs storage's option 'bucket' must be a bucket name, got 'gs://my-bucket'",
    ),
    (
        "gcs-bucket-upper-case",
        storage("gcs", "bucket=MyBucket"),
        "the gcs storage's option 'bucket' must be a bucket name, got 'MyBucket'",
    ),
    (
        "storage-option-invalid-yaml",
        storage("s3", "bucket=[my-bucket"),
        "--storage-option 'bucket=[my-bucket' has a value that is not valid YAML",
    ),
    # names of things
    (
        "dag-id-with-a-space",
        [*DEMO, "--dag-id", "my dag"],
        "--dag-id 'my dag' is not a DAG id Airflow accepts (letters, digits, '_', '.' and '-', "
        "at most 250 characters); use one such as 'my_dag'.",
    ),
    (
        "dag-id-with-a-slash",
        [*DEMO, "--dag-id", "team/demo"],
        "--dag-id 'team/demo' is not a DAG id Airflow accepts",
    ),
    (
        "dag-id-too-long",
        [*DEMO, "--dag-id", "d" * 251],
        f"--dag-id {'d' * 251!r} is not a DAG id Airflow accepts",
    ),
    (
        "wrong-attribute",
        [*DEMO, "-a", "definitions"],
        f"file {str(EXAMPLES / 'demo.py')!r} has no attribute 'definitions'; its Definitions, "
        "repositories and jobs are: defs, demo_pipeline: pass one of them with -a, or leave -a "
        "out to find them.",
    ),
    (
        "wrong-attribute-of-a-module",
        ["numbers", "-m", "tests.jobs.pkg.jobs", "-a", "nope"],
        "module 'tests.jobs.pkg.jobs' has no attribute 'nope'; its Definitions, repositories "
        "and jobs are: defs, numbers, other",
    ),
    (
        "workspace-entry-missing-file",
        ["numbers", "-w", "{tmp}/missing_file.yaml"],
        "workspace '{tmp}/missing_file.yaml' lists python_file 'nowhere.py', and there is no "
        "file '{tmp}/nowhere.py'; fix its relative_path (relative to the workspace's folder).",
    ),
    (
        "workspace-missing",
        ["numbers", "-w", "{tmp}/no_such_workspace.yaml"],
        "cannot read workspace '{tmp}/no_such_workspace.yaml': No such file or directory",
    ),
    (
        "workspace-not-yaml",
        ["numbers", "-w", "{tmp}/not_yaml.yaml"],
        "workspace '{tmp}/not_yaml.yaml' is not valid YAML",
    ),
    (
        "workspace-without-load-from",
        ["numbers", "-w", "{tmp}/empty.yaml"],
        "workspace '{tmp}/empty.yaml' has no 'load_from' list",
    ),
    (
        "workspace-unknown-location",
        ["numbers", "-w", str(JOBS / "workspace.yaml"), "-l", "nowhere"],
        "has no code location named 'nowhere'",
    ),
    ("python-file-missing", ["demo_pipeline", "-f", "nowhere.py"], "'nowhere.py' does not exist"),
    (
        "run-config-file-missing",
        [*DEMO, "-e", "missing.yml"],
        "cannot read run config file 'missing.yml': No such file or directory",
    ),
    (
        "run-config-a-list",
        [*DEMO, "-e", "{tmp}/list.yml"],
        "run config file '{tmp}/list.yml' must hold a mapping",
    ),
    (
        "run-config-not-yaml",
        [*DEMO, "-e", "{tmp}/not_yaml.yaml"],
        "run config file '{tmp}/not_yaml.yaml' is not valid YAML",
    ),
    (
        "run-config-invalid",
        ["demo_pipeline", "-f", str(EXAMPLES / "demo.py")],
        "the run config for job 'demo_pipeline' is invalid",
    ),
    ("unknown-job", ["nope", *DEMO[1:]], "job 'nope' is not in file"),
    ("unknown-runner", [*DEMO, "--runner", "kubernetes"], "runner 'kubernetes' is not available"),
    ("unknown-storage", [*DEMO, "--storage", "azure"], "storage 'azure' is not available"),
    (
        "misspelled-option",
        runner("subprocess", "pyhton=/usr/bin/python3"),
        "runner 'subprocess' has no option 'pyhton'",
    ),
    (
        "option-not-key-value",
        storage("filesystem", "base_dir"),
        "--storage-option 'base_dir' is not KEY=VALUE",
    ),
    (
        "image-code-root-relative",
        [*DEMO, "--image-code-root", "opt/app"],
        "--image-code-root 'opt/app' is not an absolute path",
    ),
    (
        "dags-folder-missing",
        [*DEMO, "--install", "--dags-folder", "{tmp}/no/dags"],
        "the dags folder '{tmp}/no/dags' does not exist",
    ),
    (
        "dags-folder-a-file",
        [*DEMO, "--install", "--dags-folder", "{tmp}/a_file"],
        "the dags folder '{tmp}/a_file' is not a folder",
    ),
    # what a job module does at import, and files and names a careless user hands over
    (
        "job-module-calls-os-exit",
        ["exits", "-f", "{tmp}/os_exit.py"],
        "the code location file '{tmp}/os_exit.py' ended the process with exit status 0 "
        "(os._exit) while it was loaded, so no DAG was written; remove that call from its top "
        "level, or guard it with if __name__ == '__main__'.",
    ),
    (
        "job-module-calls-sys-exit",
        ["exits", "-f", "{tmp}/sys_exit.py"],
        "the code location file '{tmp}/sys_exit.py' called sys.exit(3) while it was loaded, so "
        "no DAG was written",
    ),
    (
        "job-module-crashes",
        ["exits", "-f", "{tmp}/crash.py"],
        "the code location file '{tmp}/crash.py' was killed by signal SIGSEGV while it was loaded",
    ),
    (
        "run-config-alias-bomb",
        [*DEMO, "-e", "{tmp}/bomb.yml"],
        "run config file '{tmp}/bomb.yml' stands for more than 100000 values once its aliases "
        "(*name) are expanded; write it with fewer aliases.",
    ),
    (
        "run-config-contains-itself",
        [*DEMO, "-e", "{tmp}/itself.yml"],
        "run config file '{tmp}/itself.yml' has a value that contains itself through an alias",
    ),
    (
        "run-config-key-twice",
        [*DEMO, "-e", "{tmp}/twice.yml"],
        "run config file '{tmp}/twice.yml' gives the key 'ops' twice in one mapping (line 3, "
        "column 1), and YAML would keep only the last; merge the two into one.",
    ),
    (
        "run-config-too-large",
        [*DEMO, "-e", "{tmp}/large.yml"],
        "run config file '{tmp}/large.yml' is larger than 1024 KiB",
    ),
    (
        "run-config-latin-1",
        [*DEMO, "-e", "{tmp}/latin1.yml"],
        "run config file '{tmp}/latin1.yml' is not UTF-8 text (byte 0xe9 at offset 49); save "
        "it as UTF-8.",
    ),
    (
        "workspace-latin-1",
        ["numbers", "-w", "{tmp}/latin1.yml"],
        "workspace '{tmp}/latin1.yml' is not UTF-8 text (byte 0xe9 at offset 49)",
    ),
    (
        "option-alias-bomb",
        runner("subprocess", "env={" + ", ".join(ALIAS_BOMB) + "}"),
        "stands for more than 100000 values once its aliases (*name) are expanded",
    ),
    (
        "option-key-twice",
        runner("subprocess", "env={A: 1, A: 2}"),
        "--runner-option 'env={A: 1, A: 2}' gives the key 'A' twice in one mapping",
    ),
    (
        "dag-id-with-a-newline",
        [*DEMO, "--dag-id", "demo\n"],
        "--dag-id 'demo\\n' is not a DAG id Airflow accepts",
    ),
    (
        "dag-id-dot-dot",
        [*DEMO, "--dag-id", ".."],
        "--dag-id '..' starts with '.', which would make its file hidden and its URLs ambiguous; "
        "start it with a letter, a digit or '_'.",
    ),
    (
        "dag-id-longer-than-a-file-name",
        [*DEMO, "--dag-id", "é" * 200],
        "makes a file name longer than the 255 bytes a file system allows; use a shorter id.",
    ),
    (
        "env-name-with-equals",
        runner("subprocess", "env={'A=B': x}"),
        "the subprocess runner's option 'env' has the variable name 'A=B', which is not an "
        "environment variable name; use letters, digits and '_', not starting with a digit, "
        "such as MY_SETTING.",
    ),
    (
        "env-value-with-nul",
        runner("subprocess", 'env={A: "x\\0y"}'),
        "the subprocess runner's option 'env' gives A the value 'x\\x00y', which holds a NUL "
        "character that no environment can carry; remove it.",
    ),
    (
        "runner-option-infinite",
        runner("subprocess", "kill_timeout=.inf"),
        "the number inf at kill_timeout of the subprocess runner's options cannot be written "
        "into a DAG file",
    ),
]


@pytest.fixture
def folder(tmp_path):
    """A folder with the bad files the cases name; nothing else may appear in it."""
    (tmp_path / "a_file").write_text("")
    (tmp_path / "missing_file.yaml").write_text("load_from:\n  - python_file: nowhere.py\n")
    (tmp_path / "not_yaml.yaml").write_text("load_from: [\n")
    (tmp_path / "empty.yaml").write_text("other: 1\n")
    (tmp_path / "list.yml").write_text("- ops\n")
    (tmp_path / "dags").mkdir()
    job = "\nimport dagster as dg\n\n@dg.op\ndef a():\n    return 1\n\n"
    job += "@dg.job\ndef exits():\n    a()\n"
    (tmp_path / "os_exit.py").write_text("import os\nos._exit(0)\n" + job)
    (tmp_path / "sys_exit.py").write_text("import sys\nsys.exit(3)\n" + job)
    (tmp_path / "crash.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    (tmp_path / "bomb.yml").write_text("\n".join(ALIAS_BOMB) + "\n")
    (tmp_path / "itself.yml").write_text("ops: &ops\n  multiply_the_word: *ops\n")
    (tmp_path / "twice.yml").write_text(
        "ops:\n  multiply_the_word: {config: {factor: 2}}\nops:\n  count_letters: {}\n"
    )
    (tmp_path / "large.yml").write_text("# " + "x" * (1024 * 1024) + "\n")
    (tmp_path / "latin1.yml").write_bytes(
        "ops:\n  multiply_the_word:\n    inputs: {word: 'caf\u00e9'}\n".encode("latin-1")
    )
    return tmp_path


def _snapshot(path):
    return sorted((str(p), p.stat().st_size) for p in path.rglob("*"))


@pytest.mark.parametrize(
    ("args", "message"), [c[1:] for c in SCAFFOLD_CASES], ids=[c[0] for c in SCAFFOLD_CASES]
)
def test_a_bad_scaffold_input_is_one_sentence_with_exit_code_2_and_writes_nothing(
    folder, args, message
):
    args = [a.replace("{tmp}", str(folder)) for a in args]
    if "--install" not in args:
        args += ["--install", "--dags-folder", str(folder / "dags")]
    before = _snapshot(folder)
    done = run_cli("scaffold", *args, cwd=EXAMPLES.parent)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("dagster-airflow scaffold: ")
    assert message.replace("{tmp}", str(folder)) in lines[0]
    assert _one_sentence(lines[0])
    assert _snapshot(folder) == before


def _one_sentence(line: str) -> bool:
    """Ends with a full stop once, with no second sentence started after a '. '."""
    text = line.removeprefix("dagster-airflow scaffold: ")
    return text.endswith(".") and not re.search(r"\.\s+[A-Z][a-z]", text.replace("e.g. ", ""))


def test_the_tables_hold_at_least_forty_bad_inputs():
    assert len(SCAFFOLD_CASES) + len(DAG_FILE_CASES) + len(RUN_TIME_CASES) >= 40
    ids = [c[0] for c in SCAFFOLD_CASES + DAG_FILE_CASES + RUN_TIME_CASES]
    assert len(ids) == len(set(ids))


# -- edits of a scaffolded DAG file ------------------------------------------------------------

# (id, kind, backend name, options as DEFAULT_ARGS would hold them, expected message part): the
# operator builds each with the plugin manager's create(), exactly as DagsterOperator.execute.
DAG_FILE_CASES = [
    (
        "dag-kill-timeout-a-string",
        "runner",
        "subprocess",
        {"kill_timeout": "10s"},
        "option 'kill_timeout' must be a number of seconds above 0, got '10s'",
    ),
    (
        "dag-env-a-string",
        "runner",
        "subprocess",
        {"env": "A=1"},
        "option 'env' must be a mapping of variable names to values, got 'A=1'",
    ),
    (
        "dag-docker-stop-timeout-float",
        "runner",
        "docker",
        {"image": "x", "stop_timeout": 2.5},
        "option 'stop_timeout' must be a whole number of seconds of at least 0, got 2.5",
    ),
    (
        "dag-docker-misspelled",
        "runner",
        "docker",
        {"image": "x", "mount": ["/a:/b"]},
        "runner 'docker' has no option 'mount' (value ['/a:/b'])",
    ),
    (
        "dag-ecs-no-cluster",
        "runner",
        "ecs",
        {"task_definition": "t"},
        "runner 'ecs' needs the option 'cluster'",
    ),
    (
        "dag-graphql-timeout-zero",
        "runner",
        "graphql",
        {"url": "http://dagster:3000", "timeout": 0},
        "the graphql runner's option 'timeout' must be a number of seconds above 0, got 0",
    ),
    (
        "dag-base-dir-a-number",
        "storage",
        "filesystem",
        {"base_dir": 7},
        "the filesystem storage's option 'base_dir' must be a path, got 7",
    ),
    (
        "dag-s3-prefix-a-list",
        "storage",
        "s3",
        {"bucket": "my-bucket", "prefix": ["a"]},
        "the s3 storage's option 'prefix' must be a key prefix, got ['a']",
    ),
    (
        "dag-gcs-bucket-with-path",
        "storage",
        "gcs",
        {"bucket": "my-bucket/outputs"},
        "the gcs storage's option 'bucket' must be a bucket name, got 'my-bucket/outputs'",
    ),
]


@pytest.mark.parametrize(
    ("kind", "name", "options", "message"),
    [c[1:] for c in DAG_FILE_CASES],
    ids=[c[0] for c in DAG_FILE_CASES],
)
def test_a_bad_value_in_the_dag_file_is_one_sentence(kind, name, options, message):
    from dagster_airflow.plugins.manager import get_plugins

    backend = getattr(get_plugins(), kind)(name)
    with pytest.raises(DagsterAirflowError) as caught:
        backend.create(options)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


# -- faults at run time --------------------------------------------------------------------------

TROUBLE = CodeLocation(python_file=str(JOBS / "trouble.py"), working_directory=str(JOBS))
DEMO_LOCATION = CodeLocation(python_file=str(EXAMPLES / "demo.py"))
DEMO_CONFIG = {
    "ops": {
        "multiply_the_word": {"config": {"factor": 2}, "inputs": {"word": "bar"}},
    }
}

# (id, request fields changed from a good request of demo_pipeline's first step, expected exit
# code, expected part of the reported message)
RUN_TIME_CASES = [
    (
        "step-no-longer-in-the-job",
        {"step_key": "count_words"},
        2,  # no retry can fix it: the task fails at once
        "job 'demo_pipeline' has no step 'count_words' (its ops: count_letters, count_reversed, "
        "multiply_the_word, reverse_word, summarize); the DAG file is out of date with the job: "
        "scaffold it again.",
    ),
    (
        "op-renamed-config-remains",
        {
            "run_config": {
                "ops": {**DEMO_CONFIG["ops"], "double_the_word": {"config": {"factor": 2}}}
            }
        },
        2,  # no retry can fix it: the task fails at once
        "the DAG's run config configures op 'double_the_word', which job 'demo_pipeline' no "
        "longer has",
    ),
    (
        "run-config-edited-wrongly",
        {"run_config": {"ops": {"multiply_the_word": {"config": {"factor": "two"}}}}},
        2,  # no retry can fix it: the task fails at once
        "the run config for job 'demo_pipeline' is invalid",
    ),
    (
        "job-renamed",
        {"job_name": "demo"},
        1,
        "job 'demo' is not in file",
    ),
    (
        "code-location-moved",
        {"code_location": CodeLocation(python_file="/nowhere/demo.py")},
        1,
        "could not load the code location file '/nowhere/demo.py'",
    ),
    (
        "run-base-dir-a-file",
        {"storage": StorageSpec("filesystem", {"base_dir": "{tmp}/a_file"})},
        1,
        "(Not a directory) under base_dir '{tmp}/a_file'; make base_dir a folder every step can "
        "write",
    ),
    (
        "run-id-escaping",
        {"run_id": "../escaped_run"},
        2,
        "the run id '../escaped_run' from the step request is not a UUID",
    ),
    (
        "storage-unknown",
        {"storage": StorageSpec("azure")},
        2,  # no retry can fix it: the task fails at once
        "storage 'azure' is not available",
    ),
]


@pytest.mark.parametrize(
    ("changes", "exit_code", "message"),
    [c[1:] for c in RUN_TIME_CASES],
    ids=[c[0] for c in RUN_TIME_CASES],
)
def test_a_fault_at_run_time_says_its_true_cause_in_one_sentence(
    folder, changes, exit_code, message
):
    changes = {
        k: StorageSpec(v.name, {o: x.replace("{tmp}", str(folder)) for o, x in v.options.items()})
        if isinstance(v, StorageSpec)
        else v
        for k, v in changes.items()
    }
    fields = {
        "code_location": DEMO_LOCATION,
        "job_name": "demo_pipeline",
        "step_key": "multiply_the_word",
        "run_id": RUN_ID,
        "run_config": DEMO_CONFIG,
        "storage": StorageSpec("filesystem", {"base_dir": str(folder / "outputs")}),
    }
    data = json.loads(
        StepRequest(**{**fields, **{k: v for k, v in changes.items() if k != "run_id"}}).to_json()
    )
    if "run_id" in changes:
        data["run_id"] = changes["run_id"]
    env = {"PATH": os.environ["PATH"], "DAGSTER_AIRFLOW_STEP_REQUEST": json.dumps(data)}
    done = run_cli("execute-step", env=env)
    assert done.returncode == exit_code, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    failures = [json.loads(line) for line in done.stdout.splitlines() if "STEP_FAILURE" in line]
    if not failures:  # a request the worker cannot read: one line, no event
        reported = done.stdout.strip()
    else:
        assert len(failures) == 1, done.stdout
        # The deepest cause: Dagster wraps an IO manager's error in its own.
        error = failures[0]["error"]
        while error.get("cause"):
            error = error["cause"]
        reported = error["message"]
    assert message.replace("{tmp}", str(folder)) in reported
    assert "\n" not in reported


def test_troubleshooting_lists_the_messages_as_the_code_words_them():
    from tests.conftest import ROOT

    text = (ROOT / "docs" / "troubleshooting.md").read_text()
    assert "(docs/troubleshooting.md)" in (ROOT / "README.md").read_text()
    by_id = {c[0]: c[-1] for c in SCAFFOLD_CASES + RUN_TIME_CASES}
    for case in (
        "kill-timeout-not-a-number",
        "ecs-launch-type-lower-case",
        "s3-bucket-a-url",
        "dag-id-with-a-space",
        "step-no-longer-in-the-job",
        "run-id-escaping",
    ):
        shown = by_id[case].split(" (its ops:")[0]
        assert shown in text, case
