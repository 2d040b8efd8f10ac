"""Fixtures for the segmentation tests: a small held-out nanowell acquisition on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from microscope import simulate_nanowell


@pytest.fixture(scope="session")
def small_nanowell(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """512 px, 2 x 2 wells, 9 frames, seed 72 (held out: no bundled model trained on it)."""
    out = tmp_path_factory.mktemp("sim") / "nano72"
    return simulate_nanowell(out, seed=72, frames=9, size_px=512, wells=2)
