"""Headless Chromium for the console's browser tests, driven by Selenium through Debian's
`chromium` and `chromedriver` (packages `chromium`, `chromium-driver`; `.ci/run` installs them).

Both are named by path, so Selenium never looks for or downloads a browser of its own. Chromium
runs with `--no-sandbox` (tests run as root, where its sandbox cannot start) and shows pages
at a fixed size (1280 x 900), so that screenshots are comparable from one run to the next.

`Browser` is one tab on one nbrelay web: it opens pages by path, signs in as a person does,
waits for what a page shows with a deadline (never a sleep), accepts the confirmation a button
asks for, reads the console log, and saves screenshots — into `docs/screenshots/` (the README's
pictures) when NBRELAY_SCREENSHOTS=1, else into the test's temp directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver import Chrome
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

WINDOW = (1280, 900)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SCREENSHOTS_WANTED = "NBRELAY_SCREENSHOTS"
MISSING = (
    "browser tests need Chromium and its driver (Debian packages chromium and chromium-driver: "
    "apt-get install chromium chromium-driver; .ci/run installs them)"
)
T = TypeVar("T")


def programs() -> tuple[str, str] | None:
    """The paths of `chromium` and `chromedriver`, or None when either is not installed."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def start_chromium(chromium: str, driver: str) -> Chrome:
    """A headless Chromium that keeps its console log (read with `Browser.console`)."""
    options = Options()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--hide-scrollbars",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = Chrome(options=options, service=Service(executable_path=driver))
    chrome.set_page_load_timeout(30)
    # the window's own bars take part of --window-size: the page itself gets exactly WINDOW
    chrome.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False},
    )
    return chrome


class Browser:
    """A Chromium tab on the nbrelay web at `base_url`."""

    def __init__(self, driver: Chrome, base_url: str, scratch: Path) -> None:
        self.driver = driver
        self.base_url = base_url.rstrip("/")
        self.shots = SCREENSHOTS if os.environ.get(SCREENSHOTS_WANTED) == "1" else scratch

    # navigating

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    @property
    def path(self) -> str:
        """The current page's path and query, without the host."""
        return self.driver.current_url.removeprefix(self.base_url)

    def fill_sign_in(self, token: str) -> None:
        """Fill in the sign-in form on this page and send it (the answer is not waited for)."""
        field = self.wait_for('input[name="token"]')
        field.clear()
        field.send_keys(token)
        self.find('main form button[type="submit"]').click()

    def signed_in(self, token: str) -> Browser:
        """Sign in from the form and wait until the overview shows the console's navigation."""
        self.open("/signin")
        self.fill_sign_in(token)
        self.wait_for("nav.pages")
        return self

    # reading

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str | None:
        """The visible text of the first element matching `css`, None if there is none."""
        try:
            return self.find(css).text.strip()
        except (NoSuchElementException, StaleElementReferenceException):
            return None  # none yet, or htmx swapped it out between finding and reading

    def run(self, script: str) -> object:
        return self.driver.execute_script(script)

    def console(self) -> list[str]:
        """The console messages logged since the last call (Chromium hands each out once)."""
        return [entry["message"] for entry in self.driver.get_log("browser")]

    # waiting

    def wait(self, condition: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
        """`condition()` once it is truthy, polled until `timeout`; else an AssertionError naming
        `what` and the page it was on."""
        try:
            found = WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(
                lambda _: condition()
            )
        except TimeoutException:
            raise AssertionError(
                f"waited {timeout} s for {what} on {self.path}; the page shows:\n"
                f"{self.text('body') or ''}"[:3000]
            ) from None
        assert found is not None  # `until` hands back only a truthy value
        return found

    def wait_for(self, css: str, timeout: float = 20.0) -> WebElement:
        return self.wait(
            lambda: next(iter(self.find_all(css)), None), f"an element {css!r}", timeout
        )

    def wait_for_text(self, css: str, text: str, timeout: float = 20.0) -> None:
        self.wait(lambda: self.text(css) == text, f"{css!r} to say {text!r}", timeout)

    def accept_confirmation(self, timeout: float = 10.0) -> str:
        """Accept the confirmation a button asked for; returns its question."""
        alert = WebDriverWait(self.driver, timeout).until(expected_conditions.alert_is_present())
        assert alert is not False
        question = alert.text
        alert.accept()
        return question

    # pictures

    def screenshot(self, name: str) -> Path:
        """A PNG of the window, `<name>.png` in the screenshots folder."""
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{name}.png"
        assert self.driver.save_screenshot(str(path)), f"no screenshot saved to {path}"
        return path
