"""Seeded watershed and relabelling, on arrays."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage
from synthetic import draw_cells

from livecell.segmentation.instances import (
    relabel_consecutive,
    remove_border_strips,
    remove_small,
    seeded_watershed,
)


def test_two_seeds_split_two_overlapping_discs_along_the_neck() -> None:
    _, truth = draw_cells([(50.0, 50.0, 20.0), (82.0, 50.0, 20.0)], size_px=130)
    foreground = truth > 0
    seeds = np.zeros_like(truth)
    seeds[50, 50], seeds[50, 82] = 1, 2
    yy, xx = np.mgrid[0:130, 0:130]
    relief = np.minimum(np.hypot(xx - 50, yy - 50), np.hypot(xx - 82, yy - 50))
    labels = seeded_watershed(relief, seeds, foreground)
    assert set(np.unique(labels)) == {0, 1, 2}
    assert np.array_equal(labels > 0, foreground)
    assert (labels[:, :60] != 2).all()
    assert (labels[:, 72:] != 1).all()


def test_foreground_without_a_seed_stays_background() -> None:
    foreground = np.zeros((40, 40), bool)
    foreground[5:15, 5:15] = True
    foreground[25:35, 25:35] = True
    seeds = np.zeros((40, 40), np.int32)
    seeds[10, 10] = 1
    labels = seeded_watershed(np.zeros((40, 40)), seeds, foreground)
    assert (labels[5:15, 5:15] == 1).all()
    assert not labels[25:35, 25:35].any()


@given(hnp.arrays(np.int32, (12, 9), elements=st.integers(0, 20)))
def test_relabel_keeps_the_partition_and_numbers_from_one(labels: np.ndarray) -> None:
    out = relabel_consecutive(labels)
    values = np.unique(out[out > 0])
    assert list(values) == list(range(1, values.size + 1))
    assert np.array_equal(out > 0, labels > 0)
    # same pixels together, different apart
    pairs = {(int(a), int(b)) for a, b in zip(labels.ravel(), out.ravel(), strict=True)}
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})


def test_remove_small_drops_only_the_small() -> None:
    labels = np.zeros((30, 30), np.int32)
    labels[0:10, 0:10] = 4
    labels[20:22, 20:22] = 7
    out = remove_small(labels, 10)
    assert set(np.unique(out)) == {0, 1}
    assert (out[0:10, 0:10] == 1).all()


def test_wall_slivers_along_the_edge_go_and_cells_near_it_stay() -> None:
    labels = np.zeros((60, 60), np.int32)
    labels[:, 56:] = 3  # a sliver of wall down the right edge
    labels[0:4, 10:40] = 5  # and along the top
    labels[4:24, 4:24] = 8  # a cell near the top-left corner: 76 of 400 px in the band
    labels[30:50, 25:45] = 9  # a cell in the middle
    out = remove_border_strips(labels, band_px=6, max_fraction=0.5)
    assert set(np.unique(out)) == {0, 1, 2}
    assert (out[4:24, 4:24] == 1).all()
    assert (out[30:50, 25:45] == 2).all()
    assert remove_border_strips(labels, band_px=0, max_fraction=0.5) is labels


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(np.float64, (14, 14), elements=st.floats(0, 10)),
    hnp.arrays(np.bool_, (14, 14)),
    st.lists(st.tuples(st.integers(0, 13), st.integers(0, 13)), min_size=1, max_size=4),
)
def test_watershed_keeps_seeds_and_stays_in_the_foreground(
    relief: np.ndarray, foreground: np.ndarray, points: list[tuple[int, int]]
) -> None:
    seeds = np.zeros((14, 14), np.int32)
    for label, (y, x) in enumerate(points, start=1):
        seeds[y, x] = label
        foreground[y, x] = True
    labels = seeded_watershed(relief, seeds, foreground)
    assert not labels[~foreground].any()
    assert set(np.unique(labels)) <= set(np.unique(seeds))
    assert (labels[seeds > 0] == seeds[seeds > 0]).all()
    # every foreground pixel 8-connected to a seed within the foreground is labelled
    reachable, _ = ndimage.label(foreground, structure=np.ones((3, 3)))
    seeded = np.isin(reachable, np.unique(reachable[seeds > 0]))
    assert np.array_equal(labels > 0, seeded & foreground)
