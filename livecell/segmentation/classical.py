"""The model-free segmenter: contrast map, threshold, clean-up, distance-transform watershed.

Per crop: the image relative to its floor (a quadratic surface fitted robustly, so lamp
level and unevenness cancel); a foreground map from darkness (phase-contrast cells are
darker than the floor) and texture (their cytoplasm is grainy: local standard deviation,
away from the bright halo), both in units of the floor's noise; closing, opening, holes
filled, specks below ``min_area_px`` removed, a band along the crop border (the wall
halo) cleared and blobs reaching it dropped; then seeds at the peaks
of the smoothed distance transform, at least ``min_seed_distance_px`` apart, and a
seeded watershed on the negated distance splits touching cells. OpenCV and SciPy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from livecell.segmentation.instances import (
    LabelImage,
    fill_holes_per_label,
    remove_small,
    seeded_watershed,
)


@dataclass(frozen=True, slots=True)
class ClassicalParams:
    """Knobs of :class:`ClassicalSegmenter` (defaults tuned on simulated TIMING wells)."""

    smooth_sigma_px: float = 3.0  # Gaussian blur before the darkness test
    dark_threshold_sigma: float = 0.7  # darker than the floor by this many noise sd
    texture_window_px: int = 9  # side of the local standard deviation window
    texture_threshold_sigma: float = 3.0  # local sd above this many noise sd is texture
    halo_cut_sigma: float = 2.0  # texture brighter than this (the halo's edge) is not cell
    closing_px: int = 5  # closing, then opening, of the foreground (disc side)
    opening_px: int = 5
    min_area_px: int = 250  # debris and specks below this are dropped
    border_px: int = 8  # band along the crop edge (wall halo) never foreground
    seed_sigma_px: float = 2.0  # blur of the distance transform before peak finding
    min_seed_distance_px: int = 9  # seeds closer than this merge
    min_seed_depth_px: float = 4.0  # a seed lies at least this deep inside the mask
    shrink_px: int = 0  # erosion of the final mask (the halo edge)

    def __post_init__(self) -> None:
        if self.min_area_px < 0 or self.border_px < 0 or self.shrink_px < 0:
            raise ValueError("min_area_px, border_px and shrink_px must be >= 0")
        if self.texture_window_px < 3 or self.min_seed_distance_px < 1:
            raise ValueError("texture_window_px must be >= 3 and min_seed_distance_px >= 1")


def floor_surface(crop: npt.NDArray[np.float32], border_px: int) -> npt.NDArray[np.float32] | None:
    """The well floor under ``crop``: a quadratic surface fitted to its floor pixels.

    The lamp field varies smoothly across a well by a few percent, as much as a
    cell's contrast; a least-squares quadratic on a 4 px grid, refitted once without
    the pixels more than two robust sd from the first fit (cells, halos, debris),
    follows it. ``None`` when the crop is blank or not positive.
    """
    height, width = crop.shape
    if height < 2 * border_px + 8 or width < 2 * border_px + 8:
        return None
    ys, xs = np.mgrid[border_px : height - border_px : 4, border_px : width - border_px : 4]
    values = crop[ys, xs].astype(np.float64).ravel()
    u = (xs.ravel() / width) - 0.5
    v = (ys.ravel() / height) - 0.5
    design = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=1)
    keep = np.ones(values.size, dtype=bool)
    coef = np.zeros(6)
    for _ in range(2):
        coef, *_ = np.linalg.lstsq(design[keep], values[keep], rcond=None)
        residual = values - design @ coef
        spread = 1.4826 * float(np.median(np.abs(residual[keep] - np.median(residual[keep]))))
        keep = np.abs(residual) <= 2.0 * max(spread, 1e-6)
        if keep.sum() < 6:
            return None
    gy, gx = np.mgrid[0:height, 0:width]
    gu, gv = gx / width - 0.5, gy / height - 0.5
    surface = (
        coef[0]
        + coef[1] * gu
        + coef[2] * gv
        + coef[3] * gu * gu
        + coef[4] * gu * gv
        + coef[5] * gv * gv
    )
    if not np.all(np.isfinite(surface)) or float(surface.min()) <= 0.0:
        return None
    out: npt.NDArray[np.float32] = np.asarray(surface, dtype=np.float32)
    return out


def _disc(side_px: int) -> npt.NDArray[np.uint8]:
    disc: npt.NDArray[np.uint8] = np.asarray(
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side_px, side_px)), dtype=np.uint8
    )
    return disc


class ClassicalSegmenter:
    """Threshold + distance-transform watershed; see the module docstring."""

    name = "classical"

    def __init__(self, params: ClassicalParams = ClassicalParams()) -> None:
        self.params = params

    def segment(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [self.segment_one(np.asarray(crop, dtype=np.float32)) for crop in crops]

    def close(self) -> None:
        """Nothing to release: no model."""

    def foreground(self, crop: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
        """The cell mask of one crop, before splitting."""
        p = self.params
        empty = np.zeros(crop.shape, dtype=bool)
        if crop.ndim != 2:
            raise ValueError(f"a crop must be 2D, got shape {crop.shape}")
        floor = floor_surface(crop, p.border_px)
        if floor is None:
            return empty
        flat = (crop / floor - 1.0).astype(np.float32)
        window = (p.texture_window_px, p.texture_window_px)
        mean = cv2.blur(flat, window)
        sd = np.sqrt(np.maximum(cv2.blur(flat * flat, window) - mean * mean, 0.0))
        noise = float(np.median(sd))  # the floor's local sd: most of a well is floor
        if noise <= 0.0:
            return empty
        smooth = cv2.GaussianBlur(flat, (0, 0), p.smooth_sigma_px)
        dark = smooth < -p.dark_threshold_sigma * noise
        textured = (sd > p.texture_threshold_sigma * noise) & (smooth < p.halo_cut_sigma * noise)
        binary = np.asarray((dark | textured), dtype=np.uint8)
        binary = np.asarray(cv2.morphologyEx(binary, cv2.MORPH_CLOSE, _disc(p.closing_px)))
        binary = np.asarray(cv2.morphologyEx(binary, cv2.MORPH_OPEN, _disc(p.opening_px)))
        if p.border_px:
            binary[: p.border_px] = 0
            binary[-p.border_px :] = 0
            binary[:, : p.border_px] = 0
            binary[:, -p.border_px :] = 0
        filled = ndimage.binary_fill_holes(binary.astype(bool))
        if p.shrink_px:
            filled = cv2.erode(filled.astype(np.uint8), _disc(2 * p.shrink_px + 1)).astype(bool)
        components, _ = ndimage.label(filled)
        kept = remove_small(components.astype(np.int32), p.min_area_px)
        # cells keep away from the walls: what reaches the border band is wall halo
        rim = p.border_px + 2
        edge_ids = np.unique(
            np.concatenate(
                [
                    kept[:rim].ravel(),
                    kept[-rim:].ravel(),
                    kept[:, :rim].ravel(),
                    kept[:, -rim:].ravel(),
                ]
            )
        )
        mask: npt.NDArray[np.bool_] = (kept > 0) & ~np.isin(kept, edge_ids[edge_ids > 0])
        return mask

    def segment_one(self, crop: npt.NDArray[np.float32]) -> LabelImage:
        """Instance labels (int32, 0 background, 1..n) of one crop."""
        p = self.params
        fg = self.foreground(crop)
        if not fg.any():
            return np.zeros(crop.shape, dtype=np.int32)
        distance = cv2.distanceTransform(fg.astype(np.uint8), cv2.DIST_L2, 5)
        smooth = cv2.GaussianBlur(distance, (0, 0), p.seed_sigma_px)
        size = 2 * p.min_seed_distance_px + 1
        peaks = (smooth == ndimage.maximum_filter(smooth, size=size)) & (
            distance >= p.min_seed_depth_px
        )
        seeds, _ = ndimage.label(peaks, structure=np.ones((3, 3)))
        # a component of the mask with no seed deep enough still gets one (its deepest pixel)
        components, count = ndimage.label(fg)
        seeded = np.unique(components[seeds > 0])
        next_label = int(seeds.max(initial=0)) + 1
        for index in range(1, count + 1):
            if index in seeded:
                continue
            where = np.where(components == index, distance, -1.0)
            y, x = np.unravel_index(int(np.argmax(where)), where.shape)
            seeds[y, x] = next_label
            next_label += 1
        relief = -np.asarray(smooth, dtype=np.float32)
        labels = seeded_watershed(relief, seeds.astype(np.int32), fg)
        return remove_small(fill_holes_per_label(labels), p.min_area_px)
