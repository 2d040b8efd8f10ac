"""Gap filling and convex smoothing: exact against CVXPY, and the properties that define them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livecell.tracking.smoothing import FixedLagSmoother, fill_gaps, smooth_track

cp = pytest.importorskip("cvxpy")


def random_track(rng: np.random.Generator, length: int, gap_share: float) -> np.ndarray:
    """A wandering 2-D path with noise and NaN gaps; first and last frames measured."""
    path = np.cumsum(rng.normal(0.0, 3.0, (length, 2)), axis=0) + rng.normal(0, 1.0, (length, 2))
    gaps = rng.random(length) < gap_share
    gaps[[0, -1]] = False
    path[gaps] = np.nan
    return path


def cvxpy_smooth(track: np.ndarray, lam: float) -> np.ndarray:
    """The reference: the same QP, stated as seed 003 did, solved by Clarabel."""
    measured = ~np.isnan(track).any(axis=1)
    x = cp.Variable(track.shape)
    fidelity = cp.sum_squares(x[measured] - track[measured])
    curvature = cp.sum_squares(x[2:] - 2 * x[1:-1] + x[:-2])
    cp.Problem(cp.Minimize(fidelity + lam * curvature)).solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12
    )
    return np.asarray(x.value)


@pytest.mark.parametrize("seed", range(8))
def test_banded_solution_equals_cvxpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    track = random_track(rng, int(rng.integers(5, 80)), gap_share=0.3)
    lam = float(10 ** rng.uniform(-1, 2))
    np.testing.assert_allclose(smooth_track(track, lam), cvxpy_smooth(track, lam), atol=1e-6)


def test_gap_filling_equals_cvxpy_minimum_velocity() -> None:
    track = random_track(np.random.default_rng(3), 40, gap_share=0.4)
    measured = ~np.isnan(track).any(axis=1)
    x = cp.Variable(track.shape)
    cp.Problem(cp.Minimize(cp.sum_squares(x[1:] - x[:-1])), [x[measured] == track[measured]]).solve(
        solver=cp.CLARABEL
    )
    np.testing.assert_allclose(fill_gaps(track), x.value, atol=1e-6)


tracks = st.integers(3, 60).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(0, 2**32 - 1), st.floats(0.0, 0.6))
)


@settings(max_examples=60, deadline=None)
@given(tracks, st.floats(0.01, 1000.0))
def test_smoothing_is_optimal_and_keeps_lines(spec: tuple[int, int, float], lam: float) -> None:
    n, seed, gap_share = spec
    rng = np.random.default_rng(seed)
    track = random_track(rng, n, gap_share)
    x = smooth_track(track, lam)
    assert x.shape == track.shape
    assert np.isfinite(x).all()

    def cost(y: np.ndarray) -> float:
        m = ~np.isnan(track).any(axis=1)
        return float(((y[m] - track[m]) ** 2).sum() + lam * (np.diff(y, 2, axis=0) ** 2).sum())

    for _ in range(3):  # no nearby track costs less
        assert cost(x) <= cost(x + rng.normal(0, 1e-3, x.shape)) + 1e-9
    line = np.outer(np.arange(n), [2.0, -1.0]) + np.array([5.0, 7.0])
    line[np.isnan(track).any(axis=1)] = np.nan
    np.testing.assert_allclose(smooth_track(line, lam), fill_gaps(line), atol=1e-6)


def test_gap_filling_is_straight_between_anchors_and_flat_outside() -> None:
    track = np.array([[np.nan, np.nan], [0.0, 0.0], [np.nan, np.nan], [4.0, 2.0], [np.nan] * 2])
    np.testing.assert_allclose(fill_gaps(track), [[0, 0], [0, 0], [2, 1], [4, 2], [4, 2]])


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="no measured frame"):
        smooth_track(np.full((4, 2), np.nan), 1.0)
    with pytest.raises(ValueError, match=r"\[T, D\]"):
        smooth_track(np.zeros(5), 1.0)
    with pytest.raises(ValueError, match="lam"):
        smooth_track(np.zeros((5, 2)), -1.0)


def test_fixed_lag_smoother_matches_offline_within_its_window() -> None:
    track = random_track(np.random.default_rng(7), 30, gap_share=0.2)
    lag, lam = 3, 20.0
    online = FixedLagSmoother(lam=lam, lag=lag, window=30)
    for t, row in enumerate(track):
        out = online.update(None if np.isnan(row).any() else row)
        if t < lag:
            assert out is None
        else:
            assert out is not None
            np.testing.assert_allclose(out, smooth_track(track[: t + 1], lam)[t - lag], atol=1e-9)


def test_fixed_lag_smoother_memory_is_bounded_and_close_to_offline() -> None:
    track = random_track(np.random.default_rng(8), 400, gap_share=0.1)
    lag, lam, window = 5, 10.0, 40
    online = FixedLagSmoother(lam=lam, lag=lag, window=window)
    outs = [online.update(row) for row in track]
    assert online.frames_held == window
    got = np.array([o for o in outs[lag:] if o is not None])
    offline = smooth_track(track, lam)[: len(got)]
    assert np.median(np.abs(got - offline)) < 0.5  # pixels: the window forgets little


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 40),
    st.integers(0, 6),
    st.one_of(st.just(0.0), st.floats(1e-12, 50.0)),
    st.integers(0, 2**16),
)
def test_online_then_finish_gives_one_row_per_frame_equal_to_offline(
    length: int, lag: int, lam: float, seed: int
) -> None:
    """A track no longer than the window: every row, emitted or finished, is the offline one."""
    track = random_track(np.random.default_rng(seed), length, gap_share=0.2)
    online = FixedLagSmoother(lam=lam, lag=lag, window=max(length, lag + 1))
    emitted = [out for row in track if (out := online.update(row)) is not None]
    rows = np.vstack([np.reshape(emitted, (-1, 2)), online.finish()])
    assert rows.shape == track.shape
    assert online.frames_held == 0
    np.testing.assert_allclose(rows[len(emitted) :], smooth_track(track, lam)[len(emitted) :],
                               atol=1e-6)  # fmt: skip
