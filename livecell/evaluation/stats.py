"""Small shared arithmetic: ratios that are NaN when undefined, summaries of frame differences."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or NaN when there is nothing to divide by."""
    return float(numerator) / float(denominator) if denominator else float("nan")


@dataclass(frozen=True, slots=True)
class FrameStats:
    """Summary of signed differences in frames. Empty: ``n`` 0, NaN and ``None``."""

    n: int
    mean: float
    median: float
    mean_abs: float
    min: int | None
    max: int | None


def frame_stats(values: Sequence[int]) -> FrameStats:
    if not values:
        nan = float("nan")
        return FrameStats(0, nan, nan, nan, None, None)
    a = np.asarray(values, dtype=np.float64)
    return FrameStats(
        n=len(values),
        mean=float(a.mean()),
        median=float(np.median(a)),
        mean_abs=float(np.abs(a).mean()),
        min=int(a.min()),
        max=int(a.max()),
    )
