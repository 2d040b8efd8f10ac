"""What the per-track sequence models see of a cell: a crop centred on it, and its shape.

Plain numpy, shared by the sequence datasets (training) and the nanowell stage
(the daemon), so that a model sees at run time exactly what it was trained on.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["crop_centred", "mask_eccentricity"]


def crop_centred(
    image: npt.NDArray[np.floating], x: float, y: float, crop_px: int
) -> npt.NDArray[np.float32]:
    """A ``crop_px`` square of ``image`` ``[C, H, W]`` centred on pixel ``(round(x), round(y))``.

    The centre pixel lands at index ``crop_px // 2``; outside the image is zero.
    """
    cx, cy = math.floor(x + 0.5), math.floor(y + 0.5)
    top, left = cy - crop_px // 2, cx - crop_px // 2
    out = np.zeros((image.shape[0], crop_px, crop_px), dtype=np.float32)
    y0, y1 = max(top, 0), min(top + crop_px, image.shape[1])
    x0, x1 = max(left, 0), min(left + crop_px, image.shape[2])
    if y0 < y1 and x0 < x1:
        out[:, y0 - top : y1 - top, x0 - left : x1 - left] = image[:, y0:y1, x0:x1]
    return out


def mask_eccentricity(mask: npt.NDArray[np.bool_]) -> float:
    """Eccentricity in [0, 1) of the ellipse with the mask's second central moments."""
    rows, cols = np.nonzero(mask)
    if rows.size < 2:
        return 0.0
    dy, dx = rows - rows.mean(), cols - cols.mean()
    a, b, c = float(np.mean(dx * dx)), float(np.mean(dx * dy)), float(np.mean(dy * dy))
    half_sum, root = (a + c) / 2, math.hypot((a - c) / 2, b)
    major, minor = half_sum + root, max(half_sum - root, 0.0)
    if major <= 0:
        return 0.0
    return min(math.sqrt(1.0 - minor / major), 1.0 - 1e-6)
