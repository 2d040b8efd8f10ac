"""Headless Chromium on the dashboard, for its tests, its benchmark and the README screenshot.

Not used by the daemon. Needs Debian's ``chromium`` and ``chromium-driver`` (``scripts/setup.sh``
installs them) and Selenium (``pip install livecell[dev]``). The browser runs with every
host name but 127.0.0.1 unresolvable, so a page that tried to reach the internet would fail
to, and :func:`external_requests` lists what it tried anyway.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

__all__ = ["chromium_paths", "external_requests", "open_chromium"]

_BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def chromium_paths() -> tuple[str, str] | None:
    """``(browser, chromedriver)`` from ``PATH``, or ``None`` if either is missing."""
    browser = next((p for p in map(shutil.which, _BROWSERS) if p is not None), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        return None
    return browser, driver


def open_chromium(*, width: int = 1400, height: int = 1000, offline: bool = True) -> WebDriver:
    """A headless Chromium; ``offline``: no host name resolves except 127.0.0.1."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        raise RuntimeError("driving Chromium needs selenium: pip install 'livecell[dev]'") from exc
    paths = chromium_paths()
    if paths is None:
        raise RuntimeError("no chromium and chromedriver on PATH (scripts/setup.sh installs them)")
    browser, driver = paths
    options = Options()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI containers run as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    if offline:
        options.add_argument("--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1")
    return webdriver.Chrome(options=options, service=Service(driver))


def external_requests(driver: WebDriver, base_url: str) -> list[str]:
    """Every resource the page loaded (or tried to) that is not under ``base_url``."""
    entries: Any = driver.execute_script(
        "return performance.getEntriesByType('navigation').concat("
        "performance.getEntriesByType('resource')).map(e => e.name)"
    )
    return [str(url) for url in entries if not str(url).startswith(base_url)]
