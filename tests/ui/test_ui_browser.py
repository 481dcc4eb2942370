"""The Airflow UI in a real browser (Debian's headless Chromium, driven by Playwright) on a real
deployment: a person signs in through the login form, opens a DagsterOperator task's page and
its "Dagster step" tab (the plugin's step view, in the tab's frame).

One deployment and one DAG run for the module: load_prices succeeds, parse_rates fails with a
chained cause. Screenshots are kept under the module's tmp directory, or in
$DAGSTER_AIRFLOW_SCREENSHOTS_DIR when set; a failed test names the one of its failure.
"""

from __future__ import annotations

import pytest

from harness.airflow_deployment import AirflowDeployment
from harness.browser import AirflowBrowser
from tests.conftest import JOBS, scaffold

pytestmark = pytest.mark.airflow

DAG_ID = "prices"
RUN_ID = "browser"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, airflow_deployment: AirflowDeployment):
    """The session's deployment (tests/conftest.py), with one run of the prices job."""
    storage_dir = tmp_path_factory.mktemp("storage")
    dag = scaffold(
        DAG_ID, "-f", str(JOBS / "prices.py"), "--storage-option", f"base_dir={storage_dir}"
    )
    airflow = airflow_deployment
    airflow.install(dag, "prices.py")
    airflow.wait_for_dag(DAG_ID)
    airflow.trigger(DAG_ID, RUN_ID)
    assert airflow.wait_for_run(DAG_ID, RUN_ID) == "failed"
    return airflow


@pytest.fixture(scope="module")
def browser(deployment, tmp_path_factory):
    with AirflowBrowser(deployment, tmp_path_factory.mktemp("screenshots")) as browser:
        browser.login()
        yield browser


def test_a_finished_task_page_shows_the_dagster_operator_and_its_state(browser):
    from playwright.sync_api import expect

    browser.open_task_instance(DAG_ID, RUN_ID, "load_prices")
    page = browser.page
    expect(page.get_by_text("DagsterOperator", exact=True)).to_be_visible()
    expect(page.get_by_text("Success", exact=True).filter(visible=True).first).to_be_visible()
    browser.screenshot("task-page")


def test_a_failed_check_keeps_a_screenshot_of_the_page_it_failed_on(browser):
    from playwright.sync_api import expect

    browser.open_task_instance(DAG_ID, RUN_ID, "parse_rates")
    with pytest.raises(AssertionError):
        expect(browser.page.get_by_text("no such text on the page")).to_be_visible(timeout=500)
    report = browser.screenshot_failure("a-deliberate-failure")
    path = browser.screenshots / "FAILED-a-deliberate-failure.png"
    assert str(path) in report
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_a_finished_task_offers_the_dagster_step_view_with_its_timeline_and_output(browser):
    from playwright.sync_api import expect

    browser.open_task_instance(DAG_ID, RUN_ID, "load_prices")
    browser.open_tab("Dagster step")
    view = browser.step_view()
    expect(view.get_by_test_id("dagster-timeline")).to_be_visible()
    events = view.get_by_test_id("dagster-event")
    expect(events.filter(has_text="loaded 3 prices")).to_be_visible()
    expect(events.filter(has_text="STEP_SUCCESS")).to_be_visible()
    output = view.get_by_test_id("dagster-output")
    expect(output).to_be_visible()
    expect(output.get_by_test_id("dagster-output-preview")).to_have_text(
        "{'apple': 1.25, 'pear': 0.8, 'plum': 2.5}"
    )
    browser.screenshot("dagster-step-view")


def test_a_failed_task_view_shows_the_error_and_its_cause(browser):
    from playwright.sync_api import expect

    browser.open_task_instance(DAG_ID, RUN_ID, "parse_rates")
    browser.open_tab("Dagster step")
    view = browser.step_view()
    error = view.get_by_test_id("dagster-error")
    expect(error).to_be_visible()
    causes = error.get_by_test_id("dagster-error-cause")
    expect(
        causes.filter(has_text="ValueError: no exchange rate for the prices' currency")
    ).to_be_visible()
    expect(causes.filter(has_text="KeyError: 'USD'")).to_be_visible()
    expect(view.get_by_test_id("dagster-event").filter(has_text="STEP_FAILURE")).to_be_visible()
    browser.screenshot("dagster-step-view-failed")
