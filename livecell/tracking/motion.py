"""Per-frame motion descriptors of a track: what the sequence models read beside the crops.

Plain numpy, so the daemon computes them without torch; the CNN-LSTM
(:mod:`livecell.engine.models.sequence`) and the sequence datasets use the same function.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "CHIP_MOTION_DESCRIPTORS",
    "MOTION_DESCRIPTORS",
    "chip_motion_descriptors",
    "motion_descriptors",
]

MOTION_DESCRIPTORS = (
    "speed_px_per_frame",
    "direction_rad",
    "acceleration_px_per_frame2",
    "area_change_rel",
    "eccentricity_change",
)
"""Column names of :func:`motion_descriptors`, in order, with their units."""

CHIP_MOTION_DESCRIPTORS = (
    "log_speed_px_per_frame",
    "direction_rad",
    "clipped_acceleration_px_per_frame2",
    "area_change_rel",
    "eccentricity_change",
)
"""Column names of :func:`chip_motion_descriptors`, in order."""

SPEED_FLOOR_PX = 0.1  # log speed: log(speed + this); a still cell's jitter is about this
ACCELERATION_CLIP_PX = 20.0  # |acceleration| above this is a shove or a swap, not crawling


def motion_descriptors(
    centroids: ArrayLike, areas: ArrayLike, eccentricities: ArrayLike
) -> NDArray[np.float32]:
    """Five motion descriptors per frame of a track: ``[T, 5]`` float32, columns as named in
    :data:`MOTION_DESCRIPTORS`.

    Inputs, one row per frame in time order: ``centroids [T, 2]`` as (y, x) = (row, column)
    in pixels; ``areas [T]`` in square pixels (positive); ``eccentricities [T]`` in [0, 1).
    Columns:

    0. speed, pixels per frame: distance between consecutive centroids;
    1. direction, radians in (-pi, pi]: ``atan2(dy, dx)`` of that step in image coordinates
       (x to the right, y down), 0 for a cell that did not move;
    2. acceleration, pixels per frame squared: change of speed from the previous step;
    3. area change, dimensionless: ``(area[t] - area[t-1]) / area[t-1]``;
    4. eccentricity change: ``ecc[t] - ecc[t-1]``.

    Frame 0 has no previous step: speed and direction copy frame 1's (so a cell moving at
    constant velocity has constant speed throughout), acceleration is 0 at frames 0 and 1,
    area and eccentricity changes are 0 at frame 0. A single-frame track is all zeros.
    Divide by the frame interval and multiply by the pixel size for physical units.
    """
    c = np.asarray(centroids, dtype=np.float64)
    a = np.asarray(areas, dtype=np.float64)
    e = np.asarray(eccentricities, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 2:
        raise ValueError(f"centroids must be [T, 2], got shape {c.shape}")
    n = c.shape[0]
    if a.shape != (n,) or e.shape != (n,):
        raise ValueError(
            f"areas and eccentricities must be [T] with T={n}, got {a.shape} and {e.shape}"
        )
    if n and np.any(a <= 0):
        raise ValueError("areas must be positive")
    out = np.zeros((n, len(MOTION_DESCRIPTORS)), dtype=np.float64)
    if n < 2:
        return out.astype(np.float32)
    step = np.diff(c, axis=0) + 0.0  # [T-1, 2] as (dy, dx); + 0.0 turns -0.0 into 0.0
    speed = np.hypot(step[:, 0], step[:, 1])
    direction = np.where(speed > 0, np.arctan2(step[:, 0], step[:, 1]), 0.0)
    out[1:, 0] = speed
    out[0, 0] = speed[0]
    out[1:, 1] = direction
    out[0, 1] = direction[0]
    out[2:, 2] = np.diff(speed)
    out[1:, 3] = np.diff(a) / a[:-1]
    out[1:, 4] = np.diff(e)
    return out.astype(np.float32)


def chip_motion_descriptors(
    chip_centroids: ArrayLike, areas: ArrayLike, eccentricities: ArrayLike
) -> NDArray[np.float32]:
    """:func:`motion_descriptors` of centroids on the chip (the stage's drift taken out),
    with speed as ``log(speed + SPEED_FLOOR_PX)`` and acceleration clipped to
    ``+-ACCELERATION_CLIP_PX``: columns as named in :data:`CHIP_MOTION_DESCRIPTORS`.

    On the chip a cell that stopped moves about 0.1 px a frame and a crawling one 3-10 px;
    in log they are far apart, where a linear speed spread over 0-100 px squeezes them
    together, and a single shove does not dominate a window.
    """
    out = motion_descriptors(chip_centroids, areas, eccentricities)
    out[:, 0] = np.log(out[:, 0] + SPEED_FLOOR_PX)
    out[:, 2] = np.clip(out[:, 2], -ACCELERATION_CLIP_PX, ACCELERATION_CLIP_PX)
    return out
