"""Make the README's dashboard screenshot: ``python scripts/dashboard_screenshot.py [OUT.png]``.

Runs ``livecell demo`` (40 frames, 0.5 s apart, seed 2) with the dashboard on a free port,
opens the page in headless Chromium (offline: only 127.0.0.1 resolves), waits for the
first death, opens that well's timeline and saves the page (default
``docs/images/dashboard.png``). Needs chromium, chromium-driver and selenium
(``scripts/setup.sh``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from livecell.dashboard.browser import open_chromium

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "docs" / "images" / "dashboard.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory(prefix="livecell-shot-") as tmp:
        command = [sys.executable, "-m", "livecell", "demo", "--out", f"{tmp}/demo"]
        command += ["--no-metrics", "--dashboard-port", str(port)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env)
        driver = None
        try:
            _wait_served(url)
            driver = open_chromium(width=1500, height=1050)
            driver.get(url)
            wait = WebDriverWait(driver, 120, poll_frequency=0.2)
            deaths = '#feed li[data-kind="death"]'
            death = wait.until(lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, deaths)), None))
            if death is None:
                raise SystemExit("no death shown")
            well = death.get_attribute("data-well")
            marked = f'#marks .well[data-well="{well}"][data-state="death"]'
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, marked))
            time.sleep(4)  # a few more frames and events
            driver.find_element(By.CSS_SELECTOR, marked).click()
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#timeline .crops img"))
            time.sleep(1.5)  # the crops load
            driver.save_screenshot(str(out))
        finally:
            if driver is not None:
                driver.quit()
            proc.terminate()
            proc.wait(timeout=60)
    print(out)
    return 0


def _wait_served(url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.3)
    raise SystemExit(f"{url} was not served within {timeout_s} s")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
