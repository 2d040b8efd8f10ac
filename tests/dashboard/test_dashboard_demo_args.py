"""``livecell demo``'s dashboard options, as a user types them."""

from __future__ import annotations

import subprocess
import sys


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "livecell", "demo", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_demo_help_names_the_dashboard_options() -> None:
    done = _demo("--help")
    assert done.returncode == 0
    assert "--dashboard-port" in done.stdout
    assert "--no-dashboard" in done.stdout
    assert "8108" in done.stdout


def test_a_bad_dashboard_port_is_a_usage_error_naming_it() -> None:
    done = _demo("--dashboard-port", "0")
    assert done.returncode == 2
    assert "--dashboard-port" in done.stderr
    assert "Traceback" not in done.stderr
