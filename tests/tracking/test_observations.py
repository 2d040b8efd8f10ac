"""Measurements from label images, touching pairs and the split of a frame by well box."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from livecell.tracking.observations import (
    Observations,
    assign_to_boxes,
    measure,
    split_by_box,
    touching_pairs,
)


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.int32, st.tuples(st.integers(1, 12), st.integers(1, 12)), elements=st.integers(0, 6))
)
def test_measure_equals_a_per_label_loop(image: np.ndarray) -> None:
    obs = measure(image)
    expected = [v for v in range(1, 7) if (image == v).any()]
    assert obs.label.tolist() == expected
    for i, v in enumerate(expected):
        rows, cols = np.nonzero(image == v)
        assert obs.area_px[i] == len(rows)
        assert obs.x_px[i] == pytest.approx(cols.mean())
        assert obs.y_px[i] == pytest.approx(rows.mean())
        assert obs.bbox[i].tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.int32, st.tuples(st.integers(1, 8), st.integers(1, 8)), elements=st.integers(0, 4))
)
def test_touching_pairs_are_labels_that_meet_after_a_one_pixel_dilation(image: np.ndarray) -> None:
    expected = set()
    for a in range(1, 5):
        grown = np.zeros_like(image, bool)
        for r, c in zip(*np.nonzero(image == a), strict=True):
            grown[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] = True
        expected |= {(a, int(b)) for b in np.unique(image[grown]) if b > a}
    assert {tuple(p) for p in touching_pairs(image).tolist()} == expected


def test_split_by_box_gives_each_well_its_cells_in_its_own_coordinates() -> None:
    image = np.zeros((60, 100), np.int32)
    image[10:14, 10:14] = 1  # well 0
    image[30:34, 70:74] = 2  # well 2
    image[12:16, 68:72] = 3  # well 1
    image[50:52, 50:52] = 4  # no well
    boxes = np.array([[0, 0, 40, 40], [60, 0, 100, 25], [60, 25, 100, 60]])
    parts = split_by_box(measure(image), boxes)
    assert [p.label.tolist() for p in parts] == [[1], [3], [2]]
    assert (parts[2].x_px[0], parts[2].y_px[0]) == (11.5, 6.5)
    assert parts[2].bbox[0].tolist() == [10, 5, 14, 9]
    found = assign_to_boxes([43.0, 41.0, 58.5], [5.0, 5.0, 5.0], boxes, margin_px=2)
    assert found.tolist() == [-1, 0, 1]


def test_observations_reject_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="same length"):
        Observations.from_arrays([1, 2], [0.0], [0.0, 1.0], [3.0, 3.0])
