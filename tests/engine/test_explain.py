"""Grad-CAM: shapes and ranges, batch independence, frame tiling, and ``livecell explain``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import torch
from engine_helpers import compact_model

from livecell.engine.explain import NOT_FINITE, explain_image, grad_cam
from livecell.engine.models.fusion import IntermediateFusionNet
from livecell.engine.models.registry import build_model


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


def test_the_labels_stay_the_predictions_when_another_class_is_explained(
    model: torch.nn.Module,
) -> None:
    frame = blobs(1, size=128, seed=4)[0]
    own_heat, predicted = explain_image(model, frame, patch_size=(64, 64), mean=(0.0,), std=(1.0,))
    other = int((predicted[0, 0] + 1) % 4)
    heat, labels = explain_image(
        model, frame, patch_size=(64, 64), mean=(0.0,), std=(1.0,), class_index=other
    )
    np.testing.assert_array_equal(labels, predicted)
    assert not np.allclose(heat, own_heat)  # the maps are of the class asked for


def test_a_patch_with_a_nan_pixel_is_not_classified_and_spoils_no_other(
    model: torch.nn.Module,
) -> None:
    frame = blobs(1, size=128, seed=5)[0]
    clean_heat, clean = explain_image(model, frame, patch_size=(64, 64), mean=(0.0,), std=(1.0,))
    frame[0, 10, 10] = np.nan
    heat, classes = explain_image(model, frame, patch_size=(64, 64), mean=(0.0,), std=(1.0,))
    assert classes[0, 0] == NOT_FINITE
    assert not heat[:64, :64].any()
    np.testing.assert_array_equal(classes.ravel()[1:], clean.ravel()[1:])
    np.testing.assert_allclose(heat[64:], clean_heat[64:], atol=1e-5)


def test_the_fusion_net_is_explained_at_its_shared_stage() -> None:
    torch.manual_seed(0)
    fusion = IntermediateFusionNet(in_channels=2, num_classes=3)
    patches = np.concatenate([blobs(3, seed=6), blobs(3, seed=7)], axis=1)
    explanation = grad_cam(fusion, patches)
    assert explanation.heatmaps.shape == (3, 64, 64)
    assert explanation.heatmaps.max() > 0


def explain(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "livecell", "explain", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def explain_a_frame(
    model_dir: Path, tmp_path: Path, size: int
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``livecell explain`` of a blob frame of ``size`` px a side: its result and PNG."""
    image = tmp_path / "frame.tif"
    tifffile.imwrite(image, blobs(1, size=size)[0, 0])
    out = tmp_path / "why.png"
    return explain(str(model_dir), str(image), "--out", str(out)), out


def test_explain_command_writes_an_overlay_png(model_dir: Path, tmp_path: Path) -> None:
    result, out = explain_a_frame(model_dir, tmp_path, 128)
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


@pytest.mark.parametrize("out", ["image", "why", "why.tif"])
def test_explain_writes_only_a_png_and_never_over_the_image(
    model_dir: Path, tmp_path: Path, out: str
) -> None:
    image = tmp_path / "frame.tif"
    tifffile.imwrite(image, blobs(1, size=64)[0, 0])
    before = image.read_bytes()
    target = image if out == "image" else tmp_path / out
    result = explain(str(model_dir), str(image), "--out", str(target))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "is the image itself" in result.stderr if out == "image" else ".png" in result.stderr
    assert image.read_bytes() == before


def test_the_overlay_goes_to_the_current_folder_not_among_the_images(
    model_dir: Path, tmp_path: Path
) -> None:
    images, here = tmp_path / "round", tmp_path / "here"
    images.mkdir()
    here.mkdir()
    tifffile.imwrite(images / "img00.tif", blobs(1, size=64)[0, 0])
    result = explain(str(model_dir), str(images / "img00.tif"), cwd=here)
    assert result.returncode == 0, result.stderr
    assert (here / "img00.tif.gradcam.png").is_file()
    assert sorted(p.name for p in images.iterdir()) == ["img00.tif"]


def test_a_model_trained_on_resized_images_is_explained_on_the_image_resized(
    model_dir: Path, tmp_path: Path
) -> None:
    card = json.loads((model_dir / "model_card.json").read_text())
    card["data"] = {"patch_mode": "resize"}
    (model_dir / "model_card.json").write_text(json.dumps(card))
    result, out = explain_a_frame(model_dir, tmp_path, 200)
    assert result.returncode == 0, result.stderr
    assert "1 patch (the whole image, resized as in training)" in result.stdout
    assert cv2.imread(str(out)).shape == (200, 200, 3)


def test_a_tiff_the_way_a_training_tree_holds_it_is_read_as_training_reads_it(
    model_dir: Path, tmp_path: Path
) -> None:
    """Two planes without axes metadata (tifffile calls them "QYX"): training reads them
    as channels; explain refused them as a frame of unknown axes."""
    card = json.loads((model_dir / "model_card.json").read_text())
    card["input"]["channels"] = 2
    card["input"]["normalisation"] = {"mean": [0.0, 0.0], "std": [1.0, 1.0]}
    (model_dir / "model_card.json").write_text(json.dumps(card))
    torch.manual_seed(0)
    two = build_model("compact", in_channels=2, num_classes=len(card["classes"]))
    torch.save(two.state_dict(), model_dir / "model.pt")
    image = tmp_path / "img00.tif"
    tifffile.imwrite(image, np.concatenate([blobs(1, size=64)[0]] * 2), photometric="minisblack")
    out = tmp_path / "why.png"
    result = explain(str(model_dir), str(image), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.is_file()


def test_a_tiff_of_several_images_is_refused_not_cut_to_its_first(
    model_dir: Path, tmp_path: Path
) -> None:
    image = tmp_path / "two.ome.tif"
    with tifffile.TiffWriter(image, ome=True) as tif:
        for _ in range(2):
            tif.write(blobs(1, size=64)[0, 0], metadata={"axes": "YX"})
    result = explain(str(model_dir), str(image), "--out", str(tmp_path / "why.png"))
    assert result.returncode == 2
    assert "2 images (series) of one size in one TIFF" in result.stderr
