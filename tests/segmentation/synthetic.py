"""Synthetic phase-contrast wells for the segmentation tests: dark textured discs with halos."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt


def draw_cells(
    centres_radii: list[tuple[float, float, float]],
    *,
    size_px: int = 160,
    seed: int = 0,
    floor_adu: float = 5000.0,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int32]]:
    """(image, labels): one dark, grainy disc with a bright halo per ``(x, y, radius)``,
    imaged roughly as phase contrast images them, with camera noise.

    Where discs overlap the later one is on top (owns the pixels in ``labels``).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size_px, 0:size_px].astype(np.float32)
    labels = np.zeros((size_px, size_px), np.int32)
    thickness = np.zeros((size_px, size_px), np.float32)
    grain = cv2.GaussianBlur(rng.normal(0, 1, (size_px, size_px)).astype(np.float32), (0, 0), 1.5)
    for index, (x, y, r) in enumerate(centres_radii, start=1):
        inside = np.hypot(xx - x, yy - y) <= r
        labels[inside] = index
        thickness[inside] = np.maximum(thickness[inside], 1.0 + 0.6 * grain[inside])
    # phase contrast: the thickness minus its low-pass, so dark bodies and bright halos
    contrast = -0.15 * (thickness - cv2.GaussianBlur(thickness, (0, 0), 5.0))
    image = floor_adu * (1.0 + contrast) + rng.normal(0, 0.015 * floor_adu, contrast.shape)
    return image.astype(np.float32), labels
