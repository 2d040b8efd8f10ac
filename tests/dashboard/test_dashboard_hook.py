"""The frame-observer hook: real stages say what they saw, and only about their latest frame."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import tifffile

from livecell.analysis.nanowell import open_nanowell_stage
from livecell.analysis.overlay import NanowellOverlay, PatchOverlay, overlay_of
from livecell.analysis.patches import open_patch_stage
from livecell.config import config_from_dict
from livecell.frames import Frame, FrameKey
from livecell.metrics import Metrics


def _frame(pixels: np.ndarray, t: int) -> Frame:
    return Frame(FrameKey("acq", "Pos0", t), pixels, "YX", "watch", completed_at=0.0)


def test_the_patch_stage_overlay_is_its_latest_frames_grid(tmp_path: Path) -> None:
    config = config_from_dict(
        {"source": {"path": "in"}, "analysis": {"mode": "patches"}}, base_dir=tmp_path
    )
    stage = open_patch_stage(config, Metrics())
    rng = np.random.default_rng(0)
    image = rng.normal(100, 5, (500, 330)).astype(np.float32)
    image[:160, :160] += 400  # one bright patch among dim ones
    try:
        stage.update(_frame(image, 0))
        overlay = overlay_of(stage, FrameKey("acq", "Pos0", 0))
        assert isinstance(overlay, PatchOverlay)
        assert (overlay.rows, overlay.cols, overlay.t) == (3, 2, 0)
        assert overlay.kept.shape == (3, 2)
        assert overlay.probabilities.shape == (int(overlay.kept.sum()), len(overlay.classes))
        assert overlay_of(stage, FrameKey("acq", "Pos0", 1)) is None  # not analysed
        assert overlay_of(stage, FrameKey("acq", "Pos1", 0)) is None
    finally:
        stage.close()


def test_the_nanowell_stage_overlay_names_wells_tracks_and_labels(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    command = [sys.executable, "-m", "livecell", "simulate", str(out), "--kind", "nanowell"]
    command += ["--frames", "2", "--interval", "0", "--seed", "2", "--size", "768", "--wells", "3"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    config = config_from_dict(
        {"source": {"path": "in"}, "analysis": {"mode": "nanowell"}, "sinks": {"tracks": ""}},
        base_dir=tmp_path,
    )
    stage = open_nanowell_stage(config, Metrics())
    try:
        for t in range(2):
            pixels = tifffile.imread(out / "frames" / "Pos0" / f"t{t:05d}.ome.tif")
            stage.update(_frame(np.asarray(pixels), t))
        overlay = stage.overlay(FrameKey("acq", "Pos0", 1))
        assert isinstance(overlay, NanowellOverlay)
        assert overlay.t == 1
        assert len(overlay.wells) >= 1
        cells = [cell for well in overlay.wells for cell in well.cells]
        assert cells, "no tracked cell in a simulated chip"
        for well in overlay.wells:
            assert well.labels.shape == (well.y1 - well.y0, well.x1 - well.x0)
            for cell in well.cells:
                assert well.x0 <= cell.x < well.x1
                assert well.y0 <= cell.y < well.y1
                for label in cell.labels:
                    assert (well.labels == label).any()
        assert stage.overlay(FrameKey("acq", "Pos0", 0)) is None  # no longer the latest
    finally:
        stage.close()
