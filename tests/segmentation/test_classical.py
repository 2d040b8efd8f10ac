"""The classical segmenter on synthetic wells: touching cells split, empty wells empty."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import draw_cells

from livecell.segmentation import ClassicalParams, ClassicalSegmenter, Segmenter
from livecell.segmentation.scoring import cell_ious


def test_it_is_a_segmenter() -> None:
    assert isinstance(ClassicalSegmenter(), Segmenter)


def test_two_touching_discs_come_out_as_two_cells() -> None:
    image, truth = draw_cells([(60.0, 80.0, 20.0), (98.0, 80.0, 19.0)])
    (labels,) = ClassicalSegmenter().segment([image])
    assert int(labels.max()) == 2
    ious = cell_ious(truth, labels)
    assert min(ious.values()) > 0.7, ious


def test_three_separate_discs_are_found() -> None:
    image, truth = draw_cells([(40.0, 40.0, 16.0), (115.0, 50.0, 20.0), (70.0, 115.0, 18.0)])
    (labels,) = ClassicalSegmenter().segment([image])
    assert int(labels.max()) == 3
    assert min(cell_ious(truth, labels).values()) > 0.75


def test_shapes_dtypes_and_empty_wells() -> None:
    cells, _ = draw_cells([(60.0, 60.0, 18.0)], size_px=130)
    empty, _ = draw_cells([], size_px=150, seed=1)
    out = ClassicalSegmenter().segment([cells, empty])
    assert [o.shape for o in out] == [(130, 130), (150, 150)]
    assert all(o.dtype == np.int32 for o in out)
    assert not out[1].any()
    assert ClassicalSegmenter().segment([]) == []


def test_labels_are_consecutive() -> None:
    image, _ = draw_cells([(40.0, 40.0, 16.0), (115.0, 50.0, 20.0), (70.0, 115.0, 18.0)])
    (labels,) = ClassicalSegmenter().segment([image])
    assert sorted(np.unique(labels)) == list(range(int(labels.max()) + 1))


def test_blank_and_3d_crops() -> None:
    segmenter = ClassicalSegmenter()
    assert not segmenter.segment([np.zeros((64, 64), np.float32)])[0].any()
    with pytest.raises(ValueError, match="2D"):
        segmenter.segment([np.ones((2, 64, 64), np.float32)])


def test_params_are_checked() -> None:
    with pytest.raises(ValueError, match="min_area_px"):
        ClassicalParams(min_area_px=-1)
