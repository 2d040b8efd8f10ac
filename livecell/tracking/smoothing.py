"""Gap filling and convex smoothing of cell trajectories, as banded linear algebra.

Seed 003 solved both with CVXPY/OSQP. Both are equality-constrained or unconstrained
quadratic programmes whose optimality conditions are a symmetric positive definite
banded linear system, so they are solved here exactly in O(T):

- :func:`fill_gaps`: minimise ``sum ||x_{t+1} - x_t||^2`` with the measured centroids
  held fixed. Between two anchors the optimum is the straight line joining them; before
  the first and after the last anchor it is constant (zero velocity).
- :func:`smooth_track`: minimise ``sum_{t measured} ||x_t - m_t||^2 + lambda *
  sum_t ||x_{t+1} - 2 x_t + x_{t-1}||^2`` over every frame, gaps included. The normal
  equations ``(W + lambda D'D) x = W m`` (``W`` the measured-frame mask, ``D`` the
  second difference) are pentadiagonal; ``scipy.linalg.solveh_banded`` solves them.
- :class:`FixedLagSmoother`: the same QP online over the last ``window`` frames; each
  ``update`` returns the smoothed position ``lag`` frames back, once there is one.

Positions are ``[T, D]`` float arrays in pixels, ``NaN`` rows for frames without a
measurement.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt
from scipy.linalg import solveh_banded

FloatArray = npt.NDArray[np.float64]

_SECOND_DIFFERENCE = np.array([1.0, -2.0, 1.0])


MIN_LAMBDA = 1e-9
"""Smaller curvature weights are treated as 0 by :func:`smooth_track`."""


def _as_track(positions: npt.ArrayLike) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    track = np.asarray(positions, dtype=np.float64)
    if track.ndim != 2:
        raise ValueError(f"positions must be [T, D], got shape {track.shape}")
    measured: npt.NDArray[np.bool_] = np.asarray(~np.isnan(track).any(axis=1))
    if not measured.any():
        raise ValueError("the track has no measured frame")
    return track, measured


def fill_gaps(positions: npt.ArrayLike) -> FloatArray:
    """Each ``NaN`` row filled by the minimum-velocity path through the measured rows."""
    track, measured = _as_track(positions)
    t = np.arange(len(track))
    return np.stack(
        [np.interp(t, t[measured], track[measured, d]) for d in range(track.shape[1])], axis=1
    )


def curvature_bands(length: int, lam: float) -> FloatArray:
    """``lambda * D'D`` for ``length`` frames in ``solveh_banded``'s upper form, ``[3, length]``."""
    bands = np.zeros((3, length))
    rows = np.arange(max(length - 2, 0))
    coef = _SECOND_DIFFERENCE
    for a in range(3):
        for b in range(a, 3):  # row r couples frames r + a and r + b: band b - a, column r + b
            np.add.at(bands[2 - (b - a)], rows + b, lam * coef[a] * coef[b])
    return bands


def smooth_track(positions: npt.ArrayLike, lam: float) -> FloatArray:
    """The global smoothing QP's exact minimiser, every frame (gaps filled on the way).

    ``lam`` (>= 0) weighs curvature against fidelity: 0 keeps the measurements and
    fills gaps linearly. A ``lam`` below :data:`MIN_LAMBDA` counts as 0: the
    unmeasured frames' equations would be numerically singular. With a single
    measured frame the minimiser is not unique; the constant track (zero velocity,
    as :func:`fill_gaps`) is returned.
    """
    if not lam >= 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    track, measured = _as_track(positions)
    if lam < MIN_LAMBDA or measured.sum() < 2:
        return fill_gaps(track)
    bands = curvature_bands(len(track), lam)
    bands[2] += measured
    rhs = np.where(measured[:, None], track, 0.0)
    return np.asarray(solveh_banded(bands, rhs, check_finite=False), dtype=np.float64)


class FixedLagSmoother:
    """Online smoothing of one track: ``update(position) -> position lag frames back``.

    Keeps the last ``window`` frames (bounded memory) and solves the smoothing QP over
    them at every frame, O(window). Returns ``None`` until ``lag`` frames have passed.
    Over a track no longer than ``window`` the output equals :func:`smooth_track` on
    the frames seen so far; over longer tracks the frames before the window no longer
    pull on the estimate.
    """

    def __init__(self, *, lam: float, lag: int, window: int, dims: int = 2) -> None:
        if lag < 0 or window < lag + 1 or dims < 1:
            raise ValueError(f"need 0 <= lag < window and dims >= 1: {lag=}, {window=}, {dims=}")
        if not lam >= 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        self.lam, self.lag, self.window, self.dims = lam, lag, window, dims
        self._recent: deque[FloatArray] = deque(maxlen=window)

    @property
    def frames_held(self) -> int:
        return len(self._recent)

    def update(self, position: npt.ArrayLike | None) -> FloatArray | None:
        """Add this frame's centroid (``None`` or NaN: not measured)."""
        row = np.full(self.dims, np.nan) if position is None else np.asarray(position, float)
        if row.shape != (self.dims,):
            raise ValueError(f"position must have {self.dims} values, got shape {row.shape}")
        self._recent.append(row)
        if len(self._recent) <= self.lag:
            return None
        track = np.stack(self._recent)
        if np.isnan(track).any(axis=1).all():
            return None
        smoothed: FloatArray = smooth_track(track, self.lam)[-1 - self.lag]
        return smoothed

    def finish(self) -> FloatArray:
        """The track has ended: the frames still held back (at most ``lag``), smoothed.

        Rows are in time order and follow the last position ``update`` returned;
        NaN where no frame of the window was measured. The smoother is emptied.
        """
        held = min(self.lag, len(self._recent))
        rest = np.full((held, self.dims), np.nan)
        if held and not np.isnan(np.stack(self._recent)).any(axis=1).all():
            rest = smooth_track(np.stack(self._recent), self.lam)[len(self._recent) - held :]
        self._recent.clear()
        return rest
