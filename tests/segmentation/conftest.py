"""Fixtures for the segmentation tests: a small held-out nanowell acquisition on disk."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_nanowell(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """512 px, 2 x 2 wells, 9 frames, seed 72 (held out: no bundled model trained on it)."""
    out = tmp_path_factory.mktemp("sim") / "nano72"
    subprocess.run(
        [
            *(sys.executable, "-m", "livecell", "simulate", str(out), "--kind", "nanowell"),
            *("--size", "512", "--wells", "2", "--frames", "9", "--interval", "0"),
            *("--seed", "72"),
        ],
        check=True,
        capture_output=True,
    )
    return out
