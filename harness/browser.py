"""A real browser on a real Airflow deployment: Debian's headless Chromium, driven by Playwright,
inside the deployment's network namespace.

Playwright talks to the browser it launches over a pipe, not a port, so the browser can live in
the deployment's namespace (where 127.0.0.1 is the api-server) while the test drives it from
outside: the executable Playwright launches is a two-line script that enters the namespace with
`nsenter` and execs /usr/bin/chromium. Nothing is downloaded: no Playwright browser build.

Every wait is Playwright's own (locators wait for an element to be attached and visible,
``expect`` retries its assertion), never a sleep. Screenshots go to one directory: the one
given, or ``$DAGSTER_AIRFLOW_SCREENSHOTS_DIR`` when it is set (CI keeps it as an artifact).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster_airflow.errors import ConfigurationError

if TYPE_CHECKING:
    from harness.airflow_deployment import AirflowDeployment

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS_ENV_VAR = "DAGSTER_AIRFLOW_SCREENSHOTS_DIR"
# A machine under load renders Airflow's UI slowly: Playwright's defaults are 30 s for an action
# and 5 s for an ``expect``.
TIMEOUT_MS = 60_000
# The namespace has no network at all: these keep Chromium from trying to reach one.
_CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class AirflowBrowser:
    """``with AirflowBrowser(airflow, tmp_path) as browser: browser.login(); browser.page...``

    One browser and one signed-in page for as many checks as the caller likes; ``page`` is a
    Playwright ``Page`` for the checks themselves.
    """

    def __init__(
        self,
        deployment: AirflowDeployment,
        screenshots: Path,
        viewport: tuple[int, int] = (1280, 800),
    ) -> None:
        self.deployment = deployment
        self.screenshots = Path(os.environ.get(SCREENSHOTS_ENV_VAR) or screenshots)
        self.viewport = viewport
        self._playwright: Any = None
        self._browser: Any = None
        self.page: Any = None

    def __enter__(self) -> AirflowBrowser:
        if shutil.which(CHROMIUM) is None:
            raise ConfigurationError(
                f"the browser tests need Debian's Chromium at {CHROMIUM!r}: "
                "run `apt-get install -y chromium` (make test does)"
            )
        from playwright.sync_api import expect, sync_playwright

        # expect's own default is 5 s, whatever the page's default timeout (process-wide).
        expect.set_options(timeout=TIMEOUT_MS)
        self.screenshots.mkdir(parents=True, exist_ok=True)
        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=str(self._chromium_in_namespace()), args=_CHROMIUM_ARGS
            )
            width, height = self.viewport
            self.page = self._browser.new_page(viewport={"width": width, "height": height})
            self.page.set_default_timeout(TIMEOUT_MS)
        except BaseException:
            self._playwright.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self._browser is not None:
                self._browser.close()
        finally:
            self._playwright.stop()

    def _chromium_in_namespace(self) -> Path:
        script = self.deployment.home.path / "chromium-in-namespace"
        command = " ".join(self.deployment.command_inside(CHROMIUM))
        script.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        script.chmod(0o755)
        return script

    def url(self, path: str) -> str:
        return self.deployment.base + path

    def login(self, username: str = "admin", password: str | None = None) -> None:
        """Sign in through Airflow's login form, as a person would, and wait for the home page."""
        from playwright.sync_api import expect

        page = self.page
        page.goto(self.url("/"))
        # Airflow sends a visitor with no session to the simple auth manager's form.
        page.wait_for_url("**/auth/login**")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password or self.deployment.admin_password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/auth/login" not in url)
        expect(page.get_by_role("link", name="Dags")).to_be_visible()

    def open_task_instance(
        self, dag_id: str, run_id: str, task_id: str, map_index: int = -1
    ) -> None:
        """The task instance's page in the Airflow UI, once it shows the task's state."""
        from playwright.sync_api import expect

        path = f"/dags/{dag_id}/runs/{run_id}/tasks/{task_id}"
        if map_index >= 0:
            path += f"/mapped/{map_index}"
        self.page.goto(self.url(path))
        expect(self.page.get_by_role("heading", name=task_id, exact=True)).to_be_visible()

    def open_tab(self, name: str) -> None:
        """A tab of the page shown (Airflow's own, or a plugin's external view), once open."""
        from playwright.sync_api import expect

        tab = self.page.get_by_role("link", name=name, exact=True)
        expect(tab).to_be_visible()
        tab.click()
        expect(tab).to_have_attribute("aria-current", "page")

    def step_view(self) -> Any:
        """The Dagster step view that the "Dagster step" tab shows in an iframe: a Playwright
        ``FrameLocator`` to look for its elements in."""
        from dagster_airflow.ui.airflow_plugin import URL_PREFIX

        return self.page.frame_locator(f'iframe[src*="{URL_PREFIX}/steps/"]')

    def screenshot(self, name: str) -> Path:
        """The page as it shows now, as ``<screenshots>/<name>.png``."""
        path = self.screenshots / f"{name}.png"
        self.page.screenshot(path=path)
        return path

    def screenshot_failure(self, test_name: str) -> str:
        """For a failed check: the page at the failure, kept with the other screenshots, and a
        line that says where they are."""
        try:
            path = self.screenshot(f"FAILED-{test_name}")
        except Exception as exc:  # the failure may be the browser itself
            return f"no screenshot of the failure ({exc}); screenshots in {self.screenshots}"
        return f"the page at the failure: {path}\nall screenshots: {self.screenshots}"
