"""The bundled U-Net segmenter: loads, ONNX agrees with torch, and segments held-out wells."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from synthetic import draw_cells

from livecell.engine.bundled import bundled_model_dir
from livecell.engine.export import PARITY_TOLERANCE
from livecell.segmentation import ForegroundSegmenter, Segmenter, UNetSegmenter, WatershedParams
from livecell.segmentation.scoring import SegmentationScore
from livecell.segmentation.unet import (
    BUNDLED_NAME,
    instances_from_probabilities,
    normalise_crop,
    tile_starts,
)
from livecell.training.segmentation_data import iter_well_crops

MIN_HELD_OUT_IOU = 0.88
"""The bundled model scores 0.95 here and 0.94 on full-size seeds 71-72 (docs/segmentation.md)."""


@pytest.fixture(scope="module")
def segmenter() -> UNetSegmenter:
    return UNetSegmenter.bundled(threads=1)


def test_it_is_a_segmenter(segmenter: UNetSegmenter) -> None:
    assert isinstance(segmenter, Segmenter)
    assert segmenter.tile_px % 8 == 0


def test_onnx_matches_torch_on_the_bundled_weights() -> None:
    torch = pytest.importorskip("torch")
    from livecell.engine.models.unet import UNet
    from livecell.training.segmentation_train import onnx_parity

    folder = bundled_model_dir(BUNDLED_NAME)
    segmenter = UNetSegmenter(folder, threads=1)
    model = UNet(widths=tuple(segmenter.card["model"]["widths"]))
    model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    model.eval()
    assert onnx_parity(model, folder / "model.onnx", segmenter.tile_px) < PARITY_TOLERANCE


def test_shapes_dtypes_and_an_empty_well(segmenter: UNetSegmenter) -> None:
    cells, _ = draw_cells([(60.0, 60.0, 18.0)], size_px=120)
    empty, _ = draw_cells([], size_px=219, seed=3)
    large, _ = draw_cells([(150.0, 140.0, 18.0)], size_px=300, seed=4)
    out = segmenter.segment([cells, empty, large])
    assert [o.shape for o in out] == [(120, 120), (219, 219), (300, 300)]
    assert all(o.dtype == np.int32 for o in out)
    assert not out[1].any()
    assert int(out[0].max()) >= 1
    assert int(out[2].max()) >= 1
    assert segmenter.segment([]) == []


def test_foreground_comes_with_the_same_labels(segmenter: UNetSegmenter) -> None:
    assert isinstance(segmenter, ForegroundSegmenter)
    crops = [draw_cells([(40.0, 40.0, 16.0), (70.0, 60.0, 14.0)], size_px=120, seed=s)[0]
             for s in (5, 6)]  # fmt: skip
    with_foreground = segmenter.segment_with_foreground(crops)
    for (labels, foreground), plain in zip(with_foreground, segmenter.segment(crops), strict=True):
        assert np.array_equal(labels, plain)
        assert foreground.shape == labels.shape
        assert foreground.dtype == np.float32
        assert foreground.min() >= 0.0
        assert foreground.max() <= 1.0 + 1e-6
        assert foreground[labels > 0].mean() > 0.8 > foreground[labels == 0].mean()


def test_tiles_cover_and_overlap() -> None:
    assert tile_starts(200, 224, 32) == [0]
    starts = tile_starts(500, 224, 32)
    assert starts[0] == 0
    assert starts[-1] == 500 - 224
    assert all(b - a <= 224 - 32 for a, b in itertools.pairwise(starts))


def test_normalisation_is_relative_to_the_floor() -> None:
    crop = np.full((10, 10), 4000.0)
    crop[0, 0] = 3600.0
    out = normalise_crop(crop)
    assert out[5, 5] == 0.0
    assert out[0, 0] == pytest.approx(-1.0)
    assert not normalise_crop(np.zeros((4, 4))).any()


def test_two_interior_cores_in_one_blob_make_two_cells() -> None:
    interior = np.zeros((40, 60), np.float32)
    boundary = np.zeros((40, 60), np.float32)
    interior[10:30, 5:28], interior[10:30, 32:55] = 0.9, 0.9
    boundary[8:32, 3:57] = 0.1
    boundary[10:30, 28:32] = 0.9
    labels = instances_from_probabilities(interior, boundary, WatershedParams())
    assert int(labels.max()) == 2
    assert labels[20, 10] != labels[20, 50]


def test_beats_a_minimum_iou_on_held_out_wells(
    segmenter: UNetSegmenter, small_nanowell: Path
) -> None:
    crops = list(iter_well_crops(small_nanowell, every=2))
    assert sum(c.cells for c in crops) >= 10
    score = SegmentationScore()
    for crop, labels in zip(crops, segmenter.segment([c.image for c in crops]), strict=True):
        score.add_well(crop.labels, labels)
    assert score.mean_iou() >= MIN_HELD_OUT_IOU, score.mean_iou_by_count()


def test_closed_segmenters_refuse_work() -> None:
    with UNetSegmenter.bundled(threads=1) as segmenter:
        assert segmenter.segment([np.full((32, 32), 5000.0, np.float32)])[0].shape == (32, 32)
    with pytest.raises(RuntimeError, match="closed"):
        segmenter.segment([np.full((32, 32), 5000.0, np.float32)])
