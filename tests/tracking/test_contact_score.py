"""The contact model: pair measurements against brute force, and its calls on drawn cells."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from livecell.tracking.contact_score import (
    BUNDLED_CONTACT_MODEL,
    ContactModel,
    candidate_pairs,
    contact_pairs,
    pair_patches,
    track_pairs,
)
from livecell.tracking.nanowell import TrackedCell
from livecell.tracking.observations import touching_pairs


def brute_force(labels: np.ndarray, foreground: np.ndarray, a: int, b: int) -> list[float]:
    """The four measurements of one pair, from whole-image distance transforms."""
    da = ndimage.distance_transform_edt(labels != a)
    db = ndimage.distance_transform_edt(labels != b)
    adjacent = 0
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        for r, c in zip(*np.nonzero(labels == a), strict=True):
            for sign in (1, -1):
                rr, cc = r + sign * dy, c + sign * dx
                if 0 <= rr < labels.shape[0] and 0 <= cc < labels.shape[1]:
                    adjacent += int(labels[rr, cc] == b)
    between = (da <= 3) & (db <= 3)
    mean = float(foreground[between].mean()) if between.any() else 0.0
    return [np.log1p(adjacent), float(da[labels == b].min()), mean, np.log1p(between.sum())]


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.int32, st.tuples(st.integers(2, 24), st.integers(2, 24)), elements=st.integers(0, 3)),
    st.integers(0, 2**31 - 1),
)
def test_measurements_equal_whole_image_distance_transforms(labels: np.ndarray, seed: int) -> None:
    foreground = np.random.default_rng(seed).random(labels.shape)
    found = candidate_pairs(labels, foreground)
    pairs, measured = found.pairs, found.measurements
    present = [v for v in (1, 2, 3) if (labels == v).any()]
    expected = {}
    for i, a in enumerate(present):
        for b in present[i + 1 :]:
            row = brute_force(labels, foreground, a, b)
            if row[1] <= 6.0:
                expected[(a, b)] = row
    assert {tuple(p) for p in pairs.tolist()} == set(expected)
    for pair, row, closest in zip(pairs.tolist(), measured, found.closest_rc.tolist(), strict=True):
        assert row == pytest.approx(expected[tuple(pair)], abs=1e-9)
        assert closest == brute_force_closest(labels, *pair)


def brute_force_closest(labels: np.ndarray, a: int, b: int) -> list[int]:
    """The pixel with the least ``da + db`` (then the least ``|da - db|``, then the
    first in row order), from whole-image distance transforms."""
    da = ndimage.distance_transform_edt(labels != a)
    db = ndimage.distance_transform_edt(labels != b)
    r, c = np.unravel_index(np.argmin(da + db + 0.01 * np.abs(da - db)), labels.shape)
    return [int(r), int(c)]


def two_discs(gap_px: int, bridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Two 12 px discs ``gap_px`` apart (0: their masks meet) and a foreground that is
    1 in the cells and ``bridge`` between them."""
    labels = np.zeros((40, 80), np.int32)
    rows, cols = np.mgrid[:40, :80]
    left = (rows - 20) ** 2 + (cols - 20) ** 2 <= 12**2
    labels[left] = 1
    labels[(rows - 20) ** 2 + (cols - 20 - 24 - gap_px - 1) ** 2 <= 12**2] = 2
    foreground = np.where(labels > 0, 1.0, 0.0)
    foreground[(labels == 0) & (cols > 30) & (cols < 50 + gap_px) & (abs(rows - 20) < 8)] = bridge
    return labels, foreground


def test_cells_that_meet_on_a_bright_bridge_touch() -> None:
    labels, foreground = two_discs(0, bridge=0.9)
    assert touching_pairs(labels).tolist() == [[1, 2]]
    assert contact_pairs(labels, foreground).tolist() == [[1, 2]]


def test_a_dark_gap_parts_cells_whose_masks_meet_at_a_point() -> None:
    labels, foreground = two_discs(0, bridge=0.0)
    assert touching_pairs(labels).tolist() == [[1, 2]]  # adjacency alone calls it a contact
    assert contact_pairs(labels, foreground).tolist() == []


def test_cells_far_apart_never_touch() -> None:
    labels, foreground = two_discs(10, bridge=1.0)
    assert candidate_pairs(labels, foreground).pairs.shape == (0, 2)
    assert contact_pairs(labels, foreground).shape == (0, 2)


def test_the_probability_rises_with_the_foreground_between() -> None:
    probabilities = []
    for bridge in (0.0, 0.3, 0.6, 0.9):
        labels, foreground = two_discs(1, bridge)
        measured = candidate_pairs(labels, foreground).measurements
        probabilities.append(float(BUNDLED_CONTACT_MODEL.probability(measured)[0]))
    assert probabilities == sorted(probabilities)
    assert probabilities[0] < 0.5 < probabilities[-1]


def test_a_patch_is_centred_between_the_two_cells_and_mirrors_past_the_crop() -> None:
    labels, foreground = two_discs(2, bridge=0.5)
    image = np.linspace(-10.0, 30.0, labels.size).reshape(labels.shape)
    found = candidate_pairs(labels, foreground)
    (r, c) = found.closest_rc[0].tolist()
    assert r == 20
    assert 32 < c < 35
    patch = pair_patches(image, labels, foreground, found, half_px=16)
    assert patch.shape == (1, 4, 32, 32)
    assert patch.dtype == np.float32
    window = (slice(r - 16, r + 16), slice(c - 16, c + 16))
    assert np.array_equal(patch[0, 1], labels[window] == 1)
    assert np.array_equal(patch[0, 2], labels[window] == 2)
    assert np.array_equal(patch[0, 3], foreground[window])
    assert np.allclose(patch[0, 0], np.clip(image[window], -5, 15) / 5)
    # rows 4..19 of the crop mirrored above row 0: the patch's first rows (r - 16 = 4) are inside
    near_edge = pair_patches(image, labels, foreground, found, half_px=24)
    above = near_edge[0, 0, :4]  # crop rows -4..-1, mirrored from rows 4..1
    assert np.allclose(above, np.clip(image[4:0:-1, c - 24 : c + 24], -5, 15) / 5)
    assert not near_edge[0, 1, :4].any()


def test_label_pairs_become_track_pairs_with_fragments_as_their_cell() -> None:
    cells = [
        TrackedCell(track=7, label=1, x=0, y=0, area_px=1, measured=True, fragments=(3,)),
        TrackedCell(track=4, label=2, x=0, y=0, area_px=1, measured=True),
        TrackedCell(track=9, label=None, x=0, y=0, area_px=1, measured=False),
    ]
    pairs = np.array([[1, 2], [2, 3], [1, 3], [2, 5]])
    assert track_pairs(pairs, cells) == {(4, 7)}


def test_a_model_needs_one_weight_per_measurement() -> None:
    with pytest.raises(ValueError, match="one per measurement"):
        ContactModel(weights=(1.0, 2.0), bias=0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold"):
        ContactModel(weights=(0.0,) * 4, bias=0.0, threshold=1.0)
