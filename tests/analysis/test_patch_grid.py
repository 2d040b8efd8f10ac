"""Patch mode's pure image steps: MIP, the tiling grid, the Otsu + foreground-ratio cut."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livecell.analysis.patch_grid import (
    finite_patches,
    foreground_ratio,
    otsu_threshold,
    patch_grid,
    projection,
    tile,
)
from livecell.simulation.holotomo import patch_truth


@pytest.fixture(autouse=True)
def _strict_numpy() -> Iterator[None]:
    old = np.seterr(all="raise")
    yield
    np.seterr(**old)


@settings(max_examples=200, deadline=None)
@given(
    height=st.integers(0, 5000),
    width=st.integers(0, 5000),
    patch_px=st.integers(1, 600),
)
def test_grid_covers_the_frame_but_a_remainder_smaller_than_one_patch(
    height: int, width: int, patch_px: int
) -> None:
    grid = patch_grid(height, width, patch_px)
    assert grid == patch_grid(height, width, patch_px)  # deterministic
    if height < patch_px or width < patch_px:
        assert grid.shape == (0, 0)
        return
    covered_h, covered_w = grid.covered
    assert covered_h <= height < covered_h + patch_px
    assert covered_w <= width < covered_w + patch_px
    if grid.rows and grid.cols:
        assert grid.bounds(0, 0)[::2] == (0, 0)
        y0, y1, x0, x1 = grid.bounds(grid.rows - 1, grid.cols - 1)
        assert (y1, x1) == grid.covered
        assert (y1 - y0, x1 - x0) == (patch_px, patch_px)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 5),
    cols=st.integers(1, 5),
    extra_y=st.integers(0, 15),
    extra_x=st.integers(0, 15),
    seed=st.integers(0, 2**32 - 1),
)
def test_tiles_are_the_grid_patches_row_major_and_match_the_simulator_grid(
    rows: int, cols: int, extra_y: int, extra_x: int, seed: int
) -> None:
    p = 16
    image = np.random.default_rng(seed).random((rows * p + extra_y, cols * p + extra_x))
    image = image.astype(np.float32)
    grid = patch_grid(*image.shape, p)
    assert grid.shape == (rows, cols)
    keep = np.random.default_rng(seed + 1).random(grid.shape) < 0.6
    patches = tile(image, grid, keep)
    expected = [
        image[r * p : (r + 1) * p, c * p : (c + 1) * p]
        for r in range(rows)
        for c in range(cols)
        if keep[r, c]
    ]
    assert patches.shape == (len(expected), 1, p, p)
    for got, want in zip(patches, expected, strict=True):
        np.testing.assert_array_equal(got[0], want)
    truth = patch_truth(np.zeros(image.shape, dtype=np.int32), {}, patch_px=p)
    assert {(t.row, t.col) for t in truth} == set(np.ndindex(*grid.shape))


def test_projection_is_the_max_over_z_of_channel_zero() -> None:
    rng = np.random.default_rng(0)
    zcyx = rng.random((4, 2, 8, 9)).astype(np.float32)
    np.testing.assert_array_equal(projection(zcyx, "ZCYX"), zcyx[:, 0].max(axis=0))
    np.testing.assert_array_equal(projection(zcyx[:, 0], "ZYX"), zcyx[:, 0].max(axis=0))
    assert projection(np.ones((8, 9), np.uint16), "YX").dtype == np.float32
    with pytest.raises(ValueError, match="dimensions"):
        projection(zcyx, "ZYX")


def test_otsu_separates_cells_from_background_and_the_ratio_skips_empty_patches() -> None:
    rng = np.random.default_rng(3)
    image = (1.337 + 0.001 * rng.standard_normal((320, 480))).astype(np.float32)
    image[10:150, 170:300] += 0.03  # a "cell" in patch (0, 1) only
    grid = patch_grid(*image.shape, 160)
    threshold = otsu_threshold(image)
    assert 1.34 < threshold < 1.367
    ratios = foreground_ratio(image, grid, threshold)
    assert ratios.shape == (2, 3)
    assert ratios[0, 1] == pytest.approx(140 * 130 / 160**2, abs=1e-3)
    assert (np.delete(ratios.ravel(), 1) == 0).all()


@pytest.mark.parametrize("hot", [3.0, 1e30, -1e30])
def test_one_extreme_pixel_does_not_move_the_threshold(hot: float) -> None:
    """A hot (or dead) camera pixel: the threshold still separates the cell from the
    background, so the frame's patches are not all called empty."""
    rng = np.random.default_rng(3)
    image = (1.337 + 0.001 * rng.standard_normal((320, 480))).astype(np.float32)
    image[10:150, 170:300] += 0.03
    clean = otsu_threshold(image)
    image[200, 40] = hot
    assert otsu_threshold(image) == pytest.approx(clean, abs=1e-3)
    assert foreground_ratio(image, patch_grid(*image.shape, 160), otsu_threshold(image))[0, 1] > 0.5


def test_a_constant_or_non_finite_image_has_no_threshold() -> None:
    assert otsu_threshold(np.full((32, 32), 1.33, np.float32)) == float("inf")
    assert otsu_threshold(np.full((32, 32), np.nan, np.float32)) == float("inf")
    grid = patch_grid(32, 32, 16)
    ratios = foreground_ratio(np.zeros((32, 32), np.float32), grid, float("inf"))
    assert (ratios == 0).all()


@settings(max_examples=50, deadline=None)
@given(
    rows=st.integers(1, 3),
    cols=st.integers(1, 3),
    bad=st.sets(st.tuples(st.integers(0, 2), st.integers(0, 2)), max_size=4),
    value=st.sampled_from([np.nan, np.inf, -np.inf]),
)
def test_a_patch_with_a_non_finite_pixel_is_marked_and_only_that_patch(
    rows: int, cols: int, bad: set[tuple[int, int]], value: float
) -> None:
    grid = patch_grid(rows * 8, cols * 8 + 3, 8)
    image = np.ones((rows * 8, cols * 8 + 3), np.float32)
    image[:, -1] = value  # the remainder column is no patch: it does not count
    marked = {(r, c) for r, c in bad if r < rows and c < cols}
    for r, c in marked:
        image[r * 8 + 3, c * 8 + 5] = value
    finite = finite_patches(image, grid)
    assert finite.shape == (rows, cols)
    assert {(int(r), int(c)) for r, c in zip(*np.nonzero(~finite), strict=True)} == marked
