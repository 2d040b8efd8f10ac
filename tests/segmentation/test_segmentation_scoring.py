"""Per-cell IoU with one-to-one matching, and its pooling by cells per well."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from livecell.segmentation.scoring import SegmentationScore, cell_ious, iou_matrix

label_images = hnp.arrays(np.int32, (10, 12), elements=st.integers(0, 5))


def test_a_perfect_prediction_scores_one() -> None:
    truth = np.zeros((20, 20), np.int32)
    truth[2:8, 2:8], truth[10:18, 5:15] = 3, 9
    predicted = np.where(truth == 3, 1, np.where(truth == 9, 2, 0))
    assert cell_ious(truth, predicted) == {3: 1.0, 9: 1.0}
    score = SegmentationScore()
    score.add_well(truth, predicted)
    assert score.mean_iou() == 1.0
    assert score.mean_iou_by_count() == {2: (1.0, 2)}


def test_one_prediction_covering_two_cells_matches_only_one() -> None:
    truth = np.zeros((10, 20), np.int32)
    truth[:, :10], truth[:, 10:] = 1, 2
    ious = cell_ious(truth, (truth > 0).astype(np.int32))
    assert sorted(ious.values()) == [0.0, 0.5]


def test_unmatched_cells_score_zero_and_empty_wells_add_nothing() -> None:
    truth = np.zeros((10, 10), np.int32)
    truth[2:5, 2:5] = 1
    assert cell_ious(truth, np.zeros_like(truth)) == {1: 0.0}
    score = SegmentationScore()
    score.add_well(np.zeros_like(truth), truth)
    assert score.cells == 0
    assert np.isnan(score.mean_iou())


@settings(max_examples=60, deadline=None)
@given(label_images, label_images)
def test_ious_lie_in_zero_one(truth: np.ndarray, predicted: np.ndarray) -> None:
    _, _, matrix = iou_matrix(truth, predicted)
    assert ((matrix >= 0) & (matrix <= 1)).all()
    ious = cell_ious(truth, predicted)
    assert set(ious) == set(np.unique(truth[truth > 0]).tolist())
    assert all(0.0 <= v <= 1.0 for v in ious.values())


@settings(max_examples=60, deadline=None)
@given(label_images, label_images, st.permutations(range(1, 6)))
def test_renumbering_the_prediction_changes_nothing(
    truth: np.ndarray, predicted: np.ndarray, order: list[int]
) -> None:
    lut = np.array([0, *order], dtype=np.int32)
    assert cell_ious(truth, predicted) == cell_ious(truth, lut[predicted])


def test_cells_are_grouped_by_their_wells_count() -> None:
    one = np.zeros((10, 10), np.int32)
    one[1:4, 1:4] = 1
    two = one.copy()
    two[6:9, 6:9] = 2
    score = SegmentationScore()
    score.add_well(one, one)
    score.add_well(two, one)
    assert score.mean_iou_by_count() == {1: (1.0, 1), 2: (0.5, 2)}
    assert score.cells == 3
