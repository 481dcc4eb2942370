"""The step view's page is built from the step's own text (op log lines, error messages, output
previews): all of it is escaped, and the page carries no script."""

from __future__ import annotations

from dagster_airflow.step_result import StepError, StepEvent
from dagster_airflow.ui.step_html import render
from dagster_airflow.ui.step_page import StepPage, StoredOutput

HOSTILE = '<script>alert("x")</script>'


def test_everything_a_step_wrote_is_escaped():
    page = StepPage(
        dag_id="d",
        run_id="r",
        task_id="t",
        map_index=-1,
        try_number=2,
        tries=2,
        state="failed",
        dagster_run_id="00000000-0000-5000-8000-000000000000",
        storage_name="filesystem",
        events=(
            StepEvent("LOG", HOSTILE, step_key="t", level="INFO", timestamp=1.0, attempt=2),
            StepEvent(
                "STEP_FAILURE",
                "failed",
                step_key="t",
                level="ERROR",
                timestamp=2.0,
                error=StepError("ValueError", HOSTILE, cause=StepError("KeyError", HOSTILE)),
                attempt=2,
            ),
        ),
        outputs=(StoredOutput("result", "/x", 3, "str", HOSTILE, {"note": HOSTILE}),),
    )

    html = render(page)

    assert "<script" not in html
    # The log line, the error (on the page and in the failure's line), its cause, the preview,
    # the output's metadata.
    assert html.count("&lt;script&gt;") == 6
    assert html.count('data-testid="dagster-event"') == 2
    assert html.count('data-testid="dagster-error-cause"') == 1
    assert '<a href="?map_index=-1&amp;try_number=1">try 1</a>' in html  # the other try
