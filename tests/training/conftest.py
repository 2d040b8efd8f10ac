"""Fixtures shared by the training tests: one small simulated acquisition per module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny holotomography acquisition: one position, 480 px MIP, 3 frames."""
    out = tmp_path_factory.mktemp("sim") / "acq1"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "livecell",
            "simulate",
            str(out),
            "--kind",
            "holotomo",
            "--mip",
            "--size",
            "480",
            "--frames",
            "3",
            "--seed",
            "1",
        ],
        check=True,
        capture_output=True,
    )
    return out
