"""Grad-CAM: shapes and ranges, batch independence, frame tiling, and ``livecell explain``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import torch
from engine_helpers import compact_model

from livecell.engine.explain import explain_image, grad_cam


@pytest.fixture
def model() -> torch.nn.Module:
    return compact_model()


def blobs(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """Patches with a bright disc at a random place, so feature maps are not flat."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size]
    out = rng.normal(0, 0.1, (n, 1, size, size)).astype(np.float32)
    for i in range(n):
        cy, cx = rng.integers(10, size - 10, 2)
        out[i, 0] += 2.0 * (((ys - cy) ** 2 + (xs - cx) ** 2) < 64)
    return out


def test_heatmaps_are_patch_sized_in_0_1_for_the_predicted_class(model: torch.nn.Module) -> None:
    patches = blobs(4)
    explanation = grad_cam(model, patches)
    assert explanation.heatmaps.shape == (4, 64, 64)
    assert explanation.heatmaps.min() >= 0.0
    assert explanation.heatmaps.max() <= 1.0
    np.testing.assert_array_equal(
        explanation.class_indices, explanation.probabilities.argmax(axis=1)
    )
    chosen = grad_cam(model, patches, class_index=2)
    assert set(chosen.class_indices.tolist()) == {2}


def test_one_backward_for_a_batch_equals_one_patch_at_a_time(model: torch.nn.Module) -> None:
    patches = blobs(5, seed=3)
    together = grad_cam(model, patches).heatmaps
    alone = np.stack([grad_cam(model, patches[i : i + 1]).heatmaps[0] for i in range(5)])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_a_frame_is_tiled_into_patches_with_remainders_left_out(model: torch.nn.Module) -> None:
    frame = np.random.default_rng(1).normal(0, 1, (1, 150, 200)).astype(np.float32)
    heat, classes = explain_image(model, frame, patch_size=(64, 64), mean=(0.0,), std=(1.0,))
    assert heat.shape == (128, 192)
    assert classes.shape == (2, 3)
    with pytest.raises(ValueError, match="smaller than one"):
        explain_image(model, frame[:, :32, :32], patch_size=(64, 64), mean=(0.0,), std=(1.0,))


def explain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "livecell", "explain", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_explain_command_writes_an_overlay_png(model_dir: Path, tmp_path: Path) -> None:
    image = tmp_path / "frame.tif"
    tifffile.imwrite(image, blobs(1, size=128)[0, 0])
    out = tmp_path / "why.png"
    result = explain(str(model_dir), str(image), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "4 patches" in result.stdout
    picture = cv2.imread(str(out))
    assert picture.shape == (128, 128, 3)


def test_explain_command_names_a_class_it_does_not_know(model_dir: Path, tmp_path: Path) -> None:
    image = tmp_path / "frame.tif"
    tifffile.imwrite(image, blobs(1, size=64)[0, 0])
    result = explain(str(model_dir), str(image), "--class", "zombie")
    assert result.returncode == 2
    assert "zombie" in result.stderr
    assert "Traceback" not in result.stderr
