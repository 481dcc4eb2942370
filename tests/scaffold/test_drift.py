"""`dagster-airflow check DAG_FILE`: one line per way a scaffolded DAG differs from its job."""

from __future__ import annotations

import shutil

from tests.conftest import EXAMPLES, run_cli, scaffold


def scaffolded(tmp_path, job: str):
    """A copy of the test jobs, and the DAG file scaffolded from it; the test then edits the job."""
    jobs = tmp_path / "jobs.py"
    shutil.copy(EXAMPLES / "scheduling.py", jobs)
    dag = tmp_path / "dag.py"
    dag.write_text(scaffold(job, "-f", str(jobs)))
    return jobs, dag


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_a_file_that_matches_its_job_passes(tmp_path):
    _, dag = scaffolded(tmp_path, "checked_job")

    done = run_cli("check", str(dag))

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == f"{dag}: matches its job.\n"


def test_each_difference_is_one_line_and_the_exit_status_says_so(tmp_path):
    jobs, dag = scaffolded(tmp_path, "checked_job")
    edit(jobs, "def refund_report(refunds: list)", "def refund_report(refunds: list, orders: list)")
    edit(jobs, "selection=[orders, refunds, refund_report]", "selection=[orders, refunds]")
    edit(dag, 'task_id="orders", outlets', 'task_id="orders", retries=3, outlets')

    done = run_cli("check", str(dag))

    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert "step removed: 'refund_report'" in lines
    assert "retry policy of step 'orders': {'retries': '3'} in the file, none in the job" in lines
    assert any(
        line.startswith("config schema changed: properties.ops.properties") for line in lines
    )
    assert lines[-1].endswith("scaffold it again (the command is the file's SCAFFOLD_COMMAND).")


def test_a_new_edge_and_changed_partitions_are_drift(tmp_path):
    jobs, dag = scaffolded(tmp_path, "hourly_job")
    edit(jobs, "HOURLY = dg.HourlyPartitionsDefinition(", "HOURLY = dg.DailyPartitionsDefinition(")
    edit(jobs, 'start_date="2022-05-31-00:00"', 'start_date="2022-05-31"')

    done = run_cli("check", str(dag))

    assert done.returncode == 1
    assert (
        'partitions changed: schedule is CronTriggerTimetable("0 * * * *", timezone="UTC") '
        'in the file, CronTriggerTimetable("0 0 * * *", timezone="UTC") for the job'
    ) in done.stdout.splitlines()


def test_the_doc_md_shows_the_job_the_command_and_a_plan_fingerprint(tmp_path):
    jobs, dag = scaffolded(tmp_path, "hourly_job")
    first = dag.read_text()
    edit(jobs, "selection=[hourly_readings, hourly_summary]", "selection=[hourly_readings]")
    second = scaffold("hourly_job", "-f", str(jobs))

    assert "### Dagster job `hourly_job`" in first
    assert f"Regenerate this file: `dagster-airflow scaffold hourly_job -f {jobs}`" in first
    fingerprint = [line for line in first.splitlines() if line.startswith("Plan fingerprint")]
    assert fingerprint and fingerprint[0] not in second


def test_a_file_not_scaffolded_is_refused_in_one_sentence(tmp_path):
    dag = tmp_path / "other.py"
    dag.write_text("x = 1\n")

    done = run_cli("check", str(dag))

    assert done.returncode == 2
    assert "is not a DAG file scaffolded by dagster-airflow" in done.stderr


def test_a_new_retry_policy_is_drift(tmp_path):
    jobs, dag = scaffolded(tmp_path, "checked_job")
    edit(
        jobs,
        "@dg.asset\ndef refund_report(",
        "@dg.asset(retry_policy=dg.RetryPolicy(max_retries=2))\ndef refund_report(",
    )

    done = run_cli("check", str(dag))

    assert done.returncode == 1
    assert "retry policy of step 'refund_report': none in the file, {'retries': '2'" in done.stdout
