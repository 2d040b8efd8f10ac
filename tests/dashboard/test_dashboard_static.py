"""The page ships whole: no URL to another host, every file it loads is package data."""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

from livecell.dashboard.server import STATIC_FILES

ROOT = Path(__file__).resolve().parents[2]
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # an XML namespace name, never fetched


def _static() -> dict[str, str]:
    folder = resources.files("livecell.dashboard").joinpath("static")
    return {name: folder.joinpath(name).read_text(encoding="utf-8") for name in STATIC_FILES}


def test_no_shipped_file_names_another_host() -> None:
    for name, text in _static().items():
        urls = re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"'`)]*", text)
        assert [u for u in urls if u != SVG_NAMESPACE] == [], name
        assert "@import" not in text, name
        assert "@font-face" not in text, name


def test_the_page_loads_only_what_the_server_ships() -> None:
    files = _static()
    html = files["index.html"]
    referenced = set(re.findall(r'(?:src|href)="([^"]+)"', html))
    assert referenced == {"/static/dashboard.css", "/static/dashboard.js"}
    assert '"/static/events-worker.js"' in files["dashboard.js"]
    for name in STATIC_FILES:
        assert (ROOT / "livecell" / "dashboard" / "static" / name).is_file()


def test_static_files_are_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["livecell.dashboard"]
    assert "static/*" in patterns
