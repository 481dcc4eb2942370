"""`scaffold --all` and repeated -j: a whole code location at once; `check` on a dags folder or a
code location: new, gone and drifted jobs (issue 25, point 1)."""

from __future__ import annotations

import shlex
import textwrap

import pytest

from tests.conftest import JOBS, ROOT, run_cli

PROJECT = JOBS / "project" / "definitions.py"

JOBS_FILE = """
import dagster as dg


@dg.op
def extract():
    return 1


@dg.op
def load(x):
    return x


@dg.job
def daily():
    load(extract())


@dg.job
def weekly():
    extract()


@dg.op(config_schema={"n": int})
def needs_config(context):
    return context.op_config["n"]


@dg.job
def configured():
    needs_config()


defs = dg.Definitions(jobs=[daily, weekly, configured])
"""


def rerun_scaffold_command(path, cwd=ROOT) -> tuple[str, str]:
    """Run the SCAFFOLD_COMMAND a DAG file states, as a user copies it (from the directory it
    was scaffolded in); the file's new text, and what the command said on standard error."""
    command = next(
        line for line in path.read_text().splitlines() if line.startswith("SCAFFOLD_COMMAND = ")
    )
    argv = shlex.split(eval(command.partition(" = ")[2]))  # a string literal the scaffold wrote
    assert argv[:3] == ["dagster-airflow", "scaffold", "-j"], argv
    done = run_cli(*argv[1:], cwd=cwd)
    assert done.returncode == 0, done.stderr
    return path.read_text(), done.stderr


def test_all_writes_one_dag_per_job_of_the_project_each_as_its_single_scaffold(tmp_path):
    from tests.jobs.project.definitions import defs

    dags = tmp_path / "dags"
    dags.mkdir()

    done = run_cli("scaffold", "--all", "-f", str(PROJECT), "--install", "--dags-folder", str(dags))

    assert done.returncode == 0, done.stderr
    # One DAG per job of the location, as Dagster's own Definitions list them, and one per
    # schedule of a job that has several.
    repository = defs.get_repository_def()
    expected = []
    for job in (n for n in repository.job_names if not n.startswith("__")):
        schedules = [s.name for s in repository.schedule_defs if s.job_name == job]
        expected += [f"{job}__{s}" for s in schedules] if len(schedules) > 1 else [job]
    files = sorted(dags.glob("*.py"))
    sensor_dags = [p for p in files if "DagsterSensorOperator(" in p.read_text()]
    assert sorted(p.stem for p in files if p not in sensor_dags) == sorted(expected)
    assert dags / "inbox_job__inbox_sensor.py" in sensor_dags
    lines = done.stdout.splitlines()
    assert len(lines) == len(files)
    assert f"Wrote DAG 'inbox_job' (2 tasks) to {dags / 'inbox_job.py'}" in lines
    inbox = dags / "inbox_job.py"
    text = inbox.read_text()
    assert 'task_id="read_inbox_file"' in text and 'task_id="load_inbox_file"' in text
    assert '"partition": Param(' in text
    # Exactly the file `scaffold -j inbox_job` writes with the same flags: its command, which
    # the file states, writes it again byte for byte.
    assert f"scaffold -j inbox_job -f {PROJECT} --install --dags-folder {dags}" in text
    again, said = rerun_scaffold_command(inbox)
    assert again == text
    # A DAG of one of a job's two schedules is also the file its own command writes.
    evening = dags / "twice_scheduled__evening.py"
    text = evening.read_text()
    assert "--dag-id twice_scheduled__evening --schedule evening" in text
    assert rerun_scaffold_command(evening)[0] == text
    # The single-job scaffold writes no sensor DAG, and says so.
    assert said == (
        "dagster-airflow scaffold: job 'inbox_job' has the sensor(s) 'inbox_sensor', which a "
        "single job's scaffold does not map: `scaffold --all --install` writes their sensor DAGs "
        "(docs/project.md).\n"
    )


def test_a_location_without_jobs_gets_its_implicit_asset_job(tmp_path):
    (tmp_path / "assets_only.py").write_text(
        textwrap.dedent("""
        import dagster as dg

        @dg.asset
        def raw():
            return 1

        @dg.asset
        def clean(raw):
            return raw + 1

        defs = dg.Definitions(assets=[raw, clean])
        """)
    )
    dags = tmp_path / "dags"
    dags.mkdir()

    done = run_cli(
        "scaffold", "--all", "-f", str(tmp_path / "assets_only.py"), "--install",
        "--dags-folder", str(dags), cwd=tmp_path,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    path = dags / "assets_only__all_assets.py"
    assert done.stdout == f"Wrote DAG 'assets_only__all_assets' (2 tasks) to {path}\n"
    text = path.read_text()
    assert '"job_name": "__ASSET_JOB"' in text
    assert "-j __ASSET_JOB --dag-id assets_only__all_assets" in text
    assert rerun_scaffold_command(path, tmp_path) == (text, "")


def test_j_repeats_to_pick_jobs_and_a_job_that_cannot_be_scaffolded_is_one_line(tmp_path):
    (tmp_path / "jobs.py").write_text(JOBS_FILE)
    dags = tmp_path / "dags"
    dags.mkdir()

    picked = run_cli(
        "scaffold", "-j", "daily", "-j", "weekly", "-f", str(tmp_path / "jobs.py"),
        "--install", "--dags-folder", str(dags), cwd=tmp_path,
    )  # fmt: skip
    assert picked.returncode == 0, picked.stderr
    assert sorted(p.name for p in dags.iterdir()) == ["daily.py", "weekly.py"]
    assert len(picked.stdout.splitlines()) == 2

    every = run_cli(
        "scaffold", "--all", "-f", str(tmp_path / "jobs.py"), "--install", "--dags-folder",
        str(dags), cwd=tmp_path,
    )  # fmt: skip
    # The job that needs a run config file is not written, in one line; the others are.
    assert every.returncode == 1
    assert every.stderr.startswith(
        "dagster-airflow scaffold: no DAG for job 'configured': the run config for job "
        "'configured' is invalid:"
    )
    assert len(every.stderr.splitlines()) == 1
    assert sorted(p.name for p in dags.iterdir()) == ["daily.py", "weekly.py"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            [],
            "--all writes one DAG file per job, so it needs --install (and --dags-folder to "
            "choose the folder); print a single job's DAG with -j JOB.",
        ),
        (
            ["--install", "--dag-id", "x"],
            "--dag-id 'x' is for one job and --all writes several (each DAG id is its job's "
            "name); scaffold that job alone with -j JOB --dag-id ..., after the others.",
        ),
        (
            ["--install", "-e", "run.yml"],
            "-e ['run.yml'] is for one job and --all writes several (each job gets its own "
            "config defaults); scaffold that job alone with -j JOB -e ..., after the others.",
        ),
        (
            ["--install", "--step-queue", "extract=east"],
            "--step-queue ['extract=east'] is for one job and --all writes several (step keys "
            "are one job's); scaffold that job alone with -j JOB --step-queue ..., after the "
            "others.",
        ),
        (
            ["--install", "-j", "daily"],
            "--all scaffolds every job, and job 'daily' is named too; leave out the job's name, "
            "or pick jobs with -j alone.",
        ),
    ],
    ids=["no --install", "--dag-id", "-e", "--step-queue", "-j"],
)
def test_flags_of_one_job_are_refused_with_all_in_one_sentence(flags, message, tmp_path):
    (tmp_path / "jobs.py").write_text(JOBS_FILE)
    dags = tmp_path / "dags"
    dags.mkdir()

    done = run_cli(
        "scaffold", "--all", "-f", "jobs.py", "--dags-folder", str(dags), *flags, cwd=tmp_path
    )

    assert done.returncode == 2
    assert done.stderr == f"dagster-airflow scaffold: {message}\n"
    assert list(dags.iterdir()) == []


def test_check_a_folder_or_a_location_reports_new_gone_and_drifted_jobs(tmp_path):
    jobs = tmp_path / "jobs.py"
    jobs.write_text(JOBS_FILE.replace("[daily, weekly, configured]", "[daily, weekly]"))
    dags = tmp_path / "dags"
    dags.mkdir()
    done = run_cli(
        "scaffold", "--all", "-f", "jobs.py", "--install", "--dags-folder", str(dags), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    clean = run_cli("check", str(dags), cwd=tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout == f"{dags}: 2 DAG(s) match their jobs, and every job has its DAG.\n"

    # A new job (configured), a gone one (weekly) and a drifted one (daily loses an edge).
    text = jobs.read_text()
    text = text.replace(
        "defs = dg.Definitions(jobs=[daily, weekly])",
        "defs = dg.Definitions(jobs=[daily, configured])",
    )
    jobs.write_text(text.replace("    load(extract())", "    extract()"))
    done = run_cli("check", str(dags), cwd=tmp_path)
    by_location = run_cli("check", "-f", "jobs.py", "--dags-folder", str(dags), cwd=tmp_path)

    assert done.returncode == by_location.returncode == 1, done.stdout + done.stderr
    assert done.stdout == by_location.stdout
    lines = done.stdout.splitlines()
    assert len(lines) == 4, lines
    assert lines[0] == (
        f"new job: 'configured' of file '{jobs}' has no DAG in '{dags}'; scaffold it with "
        "-j configured --install (or --all)."
    )
    assert lines[1].startswith("drifted job: 'daily' in ")
    assert "step removed: 'load'" in lines[1]
    assert lines[2] == (
        f"gone job: '{dags / 'weekly.py'}' holds DAG 'weekly' of job 'weekly', which file "
        f"'{jobs}' no longer defines; delete the file."
    )
    assert lines[3] == (
        f"{dags}: 1 new, 1 gone and 1 drifted job(s); scaffold the new and drifted ones "
        "(--all --install does all), delete the gone ones."
    )


def test_check_needs_a_file_a_folder_or_a_location(tmp_path):
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == (
        "dagster-airflow check: nothing to check; give a scaffolded DAG file, a dags folder, or "
        "a code location (-f, -m or -w) to check against Airflow's dags folder.\n"
    )
