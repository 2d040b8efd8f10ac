"""The dashboard for real: ``livecell demo`` as a subprocess, the page in headless Chromium.

Waits for a simulated death to show in the feed and on its well, checks that the page
asked nothing of any host but the daemon (every other host name is unresolvable in this
browser), saves a screenshot, and checks the page says "reconnecting" once the demo ends.
Skipped only where Debian's ``chromium`` / ``chromium-driver`` are not installed
(``scripts/setup.sh`` installs them).

``LIVECELL_DASHBOARD_SCREENSHOT=PATH`` also copies the screenshot there
(``scripts/dashboard_screenshot.py`` makes ``docs/images/dashboard.png`` that way).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from daemons import free_port

from livecell.dashboard.browser import chromium_paths, external_requests, open_chromium

pytestmark = pytest.mark.skipif(
    chromium_paths() is None,
    reason="needs Debian's chromium and chromium-driver on PATH (scripts/setup.sh installs them)",
)

DEATH_TIMEOUT_S = 60


def _wait_until_served(url: str, proc: subprocess.Popen[str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the demo exited with status {proc.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError(f"{url} was not served within {timeout_s} s")


@pytest.mark.slow
def test_a_simulated_death_shows_in_the_feed_and_on_its_well(tmp_path: Path) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    out = tmp_path / "demo"
    log = (tmp_path / "demo.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "livecell",
            "demo",
            "--frames",
            "30",
            "--interval",
            "0.3",
            "--out",
            str(out),
            "--no-metrics",
            "--dashboard-port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    driver = None
    try:
        _wait_until_served(url, proc)
        driver = open_chromium()
        driver.get(url)
        # the page redraws its lists as events arrive: an element found a moment ago may
        # be gone, so every wait reads what it needs at once and retries on a stale one
        wait = WebDriverWait(
            driver,
            DEATH_TIMEOUT_S,
            poll_frequency=0.2,
            ignored_exceptions=(StaleElementReferenceException,),
        )
        found = wait.until(
            lambda d: next(
                (
                    (li.get_attribute("data-well"), li.text)
                    for li in d.find_elements(By.CSS_SELECTOR, '#feed li[data-kind="death"]')
                ),
                None,
            )
        )
        assert found is not None
        well, text = found
        assert well, "the death in the feed names no well"
        assert "DEATH" in text
        marked = f'#marks .well[data-well="{well}"][data-state="death"]'
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, marked))
        assert driver.find_elements(By.CSS_SELECTOR, '#alerts li[data-kind="death"]')
        legend = '#legend [data-state="death"]'  # counts wells per state, from /api/state
        wait.until(lambda d: "(0)" not in d.find_element(By.CSS_SELECTOR, legend).text)
        wait.until(lambda d: d.find_element(By.ID, "frame").get_attribute("naturalWidth") != "0")
        assert driver.find_element(By.ID, "connection").text == "live"

        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, marked).click() or True)  # timeline
        wait.until(lambda d: well in d.find_element(By.ID, "timeline-title").text)
        assert not external_requests(driver, url[:-1]), "the page asked another host"
        shot = tmp_path / "dashboard.png"
        assert driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        copy_to = os.environ.get("LIVECELL_DASHBOARD_SCREENSHOT")
        if copy_to:
            shutil.copyfile(shot, copy_to)

        proc.wait(timeout=120)  # the demo ends: the page notices and keeps trying
        assert proc.returncode == 0, (tmp_path / "demo.log").read_text()
        reconnecting = 'body[data-connection="reconnecting"]'
        WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, reconnecting))
        assert driver.find_elements(By.CSS_SELECTOR, '#feed li[data-kind="death"]')
    finally:
        if driver is not None:
            driver.quit()
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        log.close()
