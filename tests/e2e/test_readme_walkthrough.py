"""The 2019 README's walk-through, as docs/quickstart.md maps it onto today's commands, run for
real: the docs' Dockerfile built with podman, an S3 bucket (moto) and an Airflow connection to
it, `dagster-airflow install`, `dagster-airflow scaffold demo_pipeline -e env.yml --install`
from the project directory with no location flag, the DAG run by Airflow with the docker runner
on S3, then `dagster-airflow results` finds what it wrote by the Airflow run id.

Only what this machine lacks is swapped: podman's socket for Docker's, this machine's Python for
the image's base (and the project's virtual environment mounted for its pip install), moto for
AWS, and the host network so the containers reach moto on loopback.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys

import boto3
import pytest
import yaml

from dagster_airflow.model import dagster_run_id
from dagster_airflow.testing.airflow_home import AirflowHome
from harness.podman import PodmanService, build_python_image, podman_available
from tests.conftest import EXAMPLES, ROOT, run_cli
from tests.e2e.test_e2e_subprocess import dagster_in_process
from tests.runners.test_docker import docs_dockerfile, project_mounts

pytestmark = [
    pytest.mark.airflow,
    pytest.mark.skipif(
        not podman_available(), reason="podman and runc are not installed (make podman)"
    ),
]

SECTION = "## The 2019 README, step by step, today"
IMAGE = "localhost/dagster-airflow-readme:latest"
STEPS = ["multiply_the_word", "count_letters", "reverse_word", "count_reversed", "summarize"]


def walkthrough() -> tuple[str, list[list[str]]]:
    """docs/quickstart.md's walk-through: its pyproject.toml and its commands, in order."""
    text = (ROOT / "docs" / "quickstart.md").read_text().split(SECTION, 1)[1]
    (toml,) = re.findall(r"```toml\n(.*?)```", text, re.S)
    commands = [
        shlex.split(line[2:])
        for block in re.findall(r"```shell\n(.*?)```", text, re.S)
        for line in block.splitlines()
        if line.startswith("$ ")
    ]
    return toml, commands


def command(commands: list[list[str]], *start: str) -> list[str]:
    (found,) = [c for c in commands if tuple(c[: len(start)]) == start]
    return found


@pytest.fixture
def podman(tmp_path_factory):
    service = PodmanService(tmp_path_factory.mktemp("podman"))
    service.start()
    yield service
    service.stop()


def test_the_readme_walkthrough(podman, moto_server, tmp_path):
    toml, commands = walkthrough()
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(EXAMPLES / "demo.py", project / "demo.py")
    shutil.copy(EXAMPLES / "demo.yml", project / "env.yml")
    (project / "pyproject.toml").write_text(toml)

    # 1. Containerize: the docs' Dockerfile, with the COPY line the walk-through says to write.
    assert command(commands, "docker", "build")[:3] == ["docker", "build", "-t"]
    dockerfile = docs_dockerfile().replace(
        "COPY demo.py demo.yml /opt/dagster/app/", "COPY demo.py env.yml /opt/dagster/app/"
    )
    assert "COPY demo.py env.yml /opt/dagster/app/" in dockerfile
    path = [f"{sys.prefix}/bin", f"{sys.base_prefix}/bin", "/usr/bin", "/bin"]
    context = [project / "demo.py", project / "env.yml"]
    build_python_image(podman, tmp_path / "image", IMAGE, path, dockerfile, context)

    # 2. The bucket, and the Airflow connection to it (in Airflow's metastore, as from the UI).
    bucket_command = command(commands, "aws", "s3api", "create-bucket")
    bucket = bucket_command[bucket_command.index("--bucket") + 1]
    boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    home = AirflowHome(tmp_path / "airflow")
    # No credentials but the connection's: none in the environment of Airflow or the commands.
    home.env = {k: v for k, v in home.env.items() if not k.startswith(("AWS_", "AIRFLOW_CONN_"))}
    home.migrate()
    connection = command(commands, "airflow", "connections", "add")
    extra = json.loads(connection[connection.index("--conn-extra") + 1])
    connection[connection.index("--conn-extra") + 1] = json.dumps(
        {**extra, "endpoint_url": moto_server}
    )
    done = home.airflow(*connection[1:])
    assert done.returncode == 0, done.stdout + done.stderr

    # 3. The plugin.
    done = run_cli(*command(commands, "dagster-airflow", "install")[1:], env=home.env)
    assert done.returncode == 0, done.stderr
    assert list((home.path / "plugins").iterdir())

    # 4. The DAG, scaffolded from the project directory with no location flag; only where this
    # machine's engine is and what the containers mount are added.
    scaffold = command(commands, "dagster-airflow", "scaffold")
    assert not {"-f", "-m", "-w"} & set(scaffold)
    args = [{"image=dagster-airflow-demo": f"image={IMAGE}"}.get(a, a) for a in scaffold[1:]]
    args += ["--runner-option", f"docker_url={podman.base_url}"]
    args += ["--runner-option", f"mounts={json.dumps(project_mounts())}"]
    args += ["--runner-option", "network_mode=host"]
    done = run_cli(*args, cwd=project, env=home.env)
    assert done.returncode == 0, done.stderr
    dag_file = home.dags_folder / "demo_pipeline.py"
    assert done.stdout == f"Wrote DAG 'demo_pipeline' (5 tasks) to {dag_file}\n"
    text = dag_file.read_text()
    assert '"module_name": "demo"' in text and '"working_directory": "/opt/dagster/app"' in text

    # Run it with Airflow: each step in its own container, its outputs in the bucket.
    assert command(commands, "airflow", "dags", "test")[3] == "demo_pipeline"
    result = home.dags_test("demo_pipeline")
    assert result.succeeded, result.output[-3000:]
    assert result.states == dict.fromkeys(STEPS, "success")
    assert f"Starting a container of {IMAGE}" in result.task_log("summarize")
    assert podman.containers(label="dagster-airflow.dagster_run_id") == []

    # Its results, by the Airflow run id.
    listing, show = [c for c in commands if c[:2] == ["dagster-airflow", "results"]]
    documented_run = listing[3]
    listing = [result.run_id if a == documented_run else a for a in listing]
    show = [result.run_id if a == documented_run else a for a in show]
    done = run_cli(*listing[1:], env=home.env)
    assert done.returncode == 0, done.stderr
    run = dagster_run_id("demo_pipeline", result.run_id)
    root = f"s3://{bucket}/dagster-airflow/{run}"
    assert done.stdout.splitlines()[0] == (
        f"DAG 'demo_pipeline', Airflow run {result.run_id!r}: Dagster run {run} in {root}"
    )
    for step in STEPS:
        assert re.search(rf"^{step}\s+success\s+result\s.*{root}/{step}/result$", done.stdout, re.M)

    done = run_cli(*show[1:], env=home.env)
    assert done.returncode == 0, done.stderr
    from examples.demo import demo_pipeline

    run_config = yaml.safe_load((project / "env.yml").read_text())
    assert eval(done.stdout) == dagster_in_process(demo_pipeline, run_config, "summarize")
    assert done.stderr.startswith(f"Unpickling {root}/summarize/result in this Python"), done.stderr
