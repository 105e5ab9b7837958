"""A real headless Chromium (the OS package) driven by Selenium, for the report and live-page tests.

Uses ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` (``make setup`` installs them); Selenium Manager never
downloads a browser. Without them the tests fail, unless ``TRAINGYM_NO_BROWSER=1`` explicitly asks to skip them.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "images"


def _find(names: tuple[str, ...]) -> str | None:
    for name in names:
        path = shutil.which(name) or (name if Path(name).is_file() else None)
        if path:
            return path
    return None


def chromium_paths() -> tuple[str, str]:
    """The system Chromium and chromedriver; fails (or skips with ``TRAINGYM_NO_BROWSER=1``) when missing."""
    browser = _find(("chromium", "chromium-browser", "/usr/bin/chromium"))
    driver = _find(("chromedriver", "/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"))
    if browser and driver:
        return browser, driver
    message = ("Chromium and chromedriver are needed for the browser tests: `apt-get install chromium "
               "chromium-driver` (make setup does it as root), or set TRAINGYM_NO_BROWSER=1 to skip them")
    if os.environ.get("TRAINGYM_NO_BROWSER") == "1":
        pytest.skip(message)
    pytest.fail(message)


def make_driver(width: int = 1400, height: int = 1800) -> Any:
    """A headless Chromium session with the browser and performance logs enabled."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}", "--no-first-run", "--disable-extensions",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


@pytest.fixture
def browser() -> Iterator[Any]:
    driver = make_driver()
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = "condition"
             ) -> Any:
    """Poll ``predicate`` until it returns a truthy value; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def console_errors(driver: Any) -> list[dict[str, Any]]:
    """Console messages at level SEVERE (errors, uncaught exceptions, failed loads)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def requested_urls(driver: Any) -> list[str]:
    """Every URL the page asked the network stack for (Chrome DevTools ``Network.requestWillBeSent``)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def screenshot(driver: Any, name: str) -> Path:
    """Save a PNG of the page into docs/images/ (the README shows it)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    driver.save_screenshot(str(path))
    return path
