"""Well crops and per-pixel targets from a simulated acquisition on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from livecell.training.segmentation_data import (
    iter_well_crops,
    read_well_boxes,
    segmentation_targets,
)


def test_crops_hold_every_cell_of_their_well(small_nanowell: Path) -> None:
    crops = list(iter_well_crops(small_nanowell, times=[0, 8]))
    boxes = read_well_boxes(small_nanowell)["Pos0"]
    assert len(crops) == 2 * len(boxes)
    for t in (0, 8):
        labels = tifffile.imread(small_nanowell / "ground_truth/Pos0/TRA" / f"man_track{t:03d}.tif")
        in_crops = sum(int((c.labels > 0).sum()) for c in crops if c.t == t)
        assert in_crops == int((labels > 0).sum())
    for crop in crops:
        assert crop.image.dtype == np.float32
        assert crop.labels.dtype == np.int32
        assert crop.image.shape == crop.labels.shape
        assert sorted(np.unique(crop.labels)) == list(range(crop.cells + 1))


def test_every_and_min_cells_filter(small_nanowell: Path) -> None:
    times = {c.t for c in iter_well_crops(small_nanowell, every=4)}
    assert times == {0, 4, 8}
    assert all(c.cells >= 2 for c in iter_well_crops(small_nanowell, times=[0], min_cells=2))


def test_targets_part_touching_cells_with_boundary() -> None:
    labels = np.zeros((20, 30), np.int32)
    labels[5:15, 5:15], labels[5:15, 15:25] = 1, 2
    target = segmentation_targets(labels, boundary_px=1)
    assert (target[labels == 0] == 0).all()
    assert (target[5:15, 14:16] == 2).all()  # where the cells meet
    assert target[10, 10] == 1
    assert target[10, 20] == 1
    assert target[5, 10] == 2  # the outline against background
