"""The daemon's torch-free sequence runtime equals the training code's ONNX path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from livecell.engine.bundled import bundled_model_dir
from livecell.engine.sequence_export import onnx_sequence_probabilities
from livecell.engine.sequence_runtime import SequenceModel, SequenceModelError
from livecell.tracking.motion import CHIP_MOTION_DESCRIPTORS
from livecell.training.sequence_train import card_sequence_normalisation


@pytest.mark.parametrize("name", ["nanowell_cell_type", "nanowell_death"])
def test_runtime_matches_the_training_normalisation_and_graph(name: str) -> None:
    folder = bundled_model_dir(name)
    model = SequenceModel(folder, max_batch=3)  # 7 windows: three batches, one partial
    window, crop = model.input.window, model.input.crop_px
    rng = np.random.default_rng(5)
    crops = rng.normal(6000, 900, (7, window, 2, crop, crop)).astype(np.float32)
    crops[:, :, 1] = rng.integers(0, 2, (7, window, crop, crop))
    motion = rng.normal(0, 3, (7, window, 5)).astype(np.float32)

    per_frame, per_window = model.predict(crops, motion)

    card = json.loads((folder / "model_card.json").read_text())
    norm_crops, norm_motion = card_sequence_normalisation(card).apply(crops, motion)
    ref_frame, ref_window = onnx_sequence_probabilities(
        folder / "model.onnx", norm_crops, norm_motion
    )
    assert per_frame.shape == (7, window, len(model.classes))
    np.testing.assert_allclose(per_frame, ref_frame, atol=1e-5)
    np.testing.assert_allclose(per_window, ref_window, atol=1e-5)


def test_a_folder_without_a_card_is_named(tmp_path: Path) -> None:
    with pytest.raises(SequenceModelError, match=r"model\.onnx is missing"):
        SequenceModel(tmp_path)


def test_the_card_says_which_motion_the_model_reads(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(bundled_model_dir("nanowell_cell_type"), folder)
    card_path = folder / "model_card.json"
    card = json.loads(card_path.read_text())
    assert SequenceModel(folder).input.motion_frame == "camera"
    card["input"]["motion"]["descriptors"] = list(CHIP_MOTION_DESCRIPTORS)
    card_path.write_text(json.dumps(card))
    assert SequenceModel(folder).input.motion_frame == "chip"
    card["input"]["motion"]["descriptors"] = ["speed_furlongs_per_fortnight"] * 5
    card_path.write_text(json.dumps(card))
    with pytest.raises(SequenceModelError, match="unknown motion descriptors"):
        SequenceModel(folder)
