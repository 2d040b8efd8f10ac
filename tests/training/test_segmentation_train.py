"""``livecell train --task segmentation`` end to end on a tiny acquisition, and its config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from microscope import simulate_nanowell

pytest.importorskip("torch")

from livecell.engine.export import PARITY_TOLERANCE
from livecell.segmentation.unet import UNetSegmenter
from livecell.training import command
from livecell.training.segmentation_train import SegmentationTrainConfig


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 512 px nanowell acquisition, 2 x 2 wells, 3 frames (seed 5: neither a training
    nor a held-out seed of the bundled model)."""
    out = tmp_path_factory.mktemp("sim") / "nano5"
    return simulate_nanowell(out, seed=5, frames=3, size_px=512, wells=2)


def test_the_command_trains_exports_and_cards(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "seg"
    held_out = simulate_nanowell(tmp_path / "nano7", seed=7, frames=2, size_px=512, wells=2)
    argv = [str(tiny), "--test", str(held_out), "--task", "segmentation", "--out", str(out)]
    argv += ["--steps", "3", "--batch-size", "2", "--window-px", "64"]
    assert command.main(argv) == command.EXIT_OK
    assert "reading wells" in capsys.readouterr().err
    card = json.loads((out / "model_card.json").read_text())
    assert card["command"].startswith("livecell train")
    assert card["metrics"]["test"]["n"] > 0
    assert 0.0 <= card["metrics"]["test"]["mean_iou"] <= 1.0
    assert card["metrics"]["onnx_parity_max_abs_diff"] < PARITY_TOLERANCE
    segmenter = UNetSegmenter(out, threads=1)
    (labels,) = segmenter.segment([np.full((100, 120), 5000.0, np.float32)])
    assert labels.shape == (100, 120)


def test_the_command_needs_held_out_data_and_refuses_patch_options(
    tiny: Path, tmp_path: Path
) -> None:
    base = [str(tiny), "--task", "segmentation", "--out", str(tmp_path / "x")]
    assert command.main(base) == command.EXIT_USAGE
    assert command.main([*base, "--test", str(tiny), "--resume"]) == command.EXIT_USAGE


def test_the_command_refuses_a_test_acquisition_it_trains_on(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(tiny), "--test", str(tiny), "--task", "segmentation", "--out", str(tmp_path / "x")]
    assert command.main(argv) == command.EXIT_USAGE
    assert "is also in DATA" in capsys.readouterr().err


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        SegmentationTrainConfig(window_px=100)
    with pytest.raises(ValueError, match="at least 1"):
        SegmentationTrainConfig(steps=0)
