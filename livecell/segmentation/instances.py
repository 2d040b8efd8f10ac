"""From per-pixel maps to cell instances: seeded watershed, small-object removal, relabelling.

Pure functions over numpy arrays (OpenCV and SciPy), shared by every segmenter.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
from scipy import ndimage

LabelImage = npt.NDArray[np.int32]


def relabel_consecutive(labels: npt.NDArray[np.integer]) -> LabelImage:
    """``labels`` with its non-zero values renumbered 1..n (order of first value kept)."""
    values = np.unique(labels)
    values = values[values != 0]
    lut = np.zeros(int(labels.max(initial=0)) + 1, dtype=np.int32)
    lut[values] = np.arange(1, values.size + 1, dtype=np.int32)
    out: LabelImage = lut[np.maximum(labels, 0)]
    return out


def remove_small(labels: LabelImage, min_area_px: int) -> LabelImage:
    """``labels`` without the instances smaller than ``min_area_px``, renumbered 1..n."""
    if labels.max(initial=0) == 0:
        return np.zeros(labels.shape, dtype=np.int32)
    areas = np.bincount(labels.ravel())
    small = areas < min_area_px
    small[0] = False
    cleaned = np.where(small[labels], 0, labels)
    return relabel_consecutive(cleaned)


def remove_border_strips(labels: LabelImage, band_px: int, max_fraction: float) -> LabelImage:
    """``labels`` without instances lying mostly (> ``max_fraction`` of their pixels) within
    ``band_px`` of the image border, renumbered 1..n.

    A well crop that takes in a sliver of the wall (the lattice a few pixels off, or
    drift) shows it as a long thin object along an edge; a cell, kept off the walls by
    its well, never lies mostly in that band.
    """
    top = int(labels.max(initial=0))
    if top == 0 or band_px <= 0:
        return labels
    band = np.zeros(labels.shape, dtype=bool)
    band[:band_px, :] = band[-band_px:, :] = True
    band[:, :band_px] = band[:, -band_px:] = True
    areas = np.bincount(labels.ravel(), minlength=top + 1)
    in_band = np.bincount(labels[band], minlength=top + 1)
    strips = in_band > max_fraction * np.maximum(areas, 1)
    strips[0] = False
    if not strips.any():
        return labels
    return relabel_consecutive(np.where(strips[labels], 0, labels))


def seeded_watershed(
    relief: npt.NDArray[np.floating],
    seeds: LabelImage,
    foreground: npt.NDArray[np.bool_],
    *,
    levels: int = 48,
) -> LabelImage:
    """Flood ``relief`` (low first) from ``seeds`` (int32, 0 = none) within ``foreground``.

    Every foreground pixel connected to a seed gets that seed's label; foreground with
    no seed stays 0. The relief is cut into ``levels`` equal steps; at each step the
    labels grow (8-connected, one pixel per pass) into the unlabelled foreground at or
    below it until they stop, so basins meet where the relief is high. Where two fronts
    reach a pixel in the same pass the larger label takes it. (SciPy's ``watershed_ift``
    and OpenCV's ``watershed`` flood by other rules: neighbour differences, arrival order.)
    """
    if seeds.max(initial=0) == 0 or not foreground.any():
        return np.zeros(seeds.shape, dtype=np.int32)
    if int(seeds.max()) > np.iinfo(np.uint16).max:
        raise ValueError("at most 65535 seeds")
    labels = np.where(foreground | (seeds > 0), seeds, 0).astype(np.uint16)
    values = relief[foreground]
    lo, hi = float(values.min()), float(values.max())
    steps = np.linspace(lo, hi, max(1, levels) + 1)[1:] if hi > lo else np.array([hi])
    kernel = np.ones((3, 3), np.uint8)
    for level in steps:
        open_px = foreground & (relief <= level) & (labels == 0)
        while open_px.any():
            grown = cv2.dilate(labels, kernel)
            reached = open_px & (grown > 0)
            if not reached.any():
                break
            labels[reached] = grown[reached]
            open_px &= ~reached
    result: LabelImage = labels.astype(np.int32)
    return result


def fill_holes_per_label(labels: LabelImage) -> LabelImage:
    """Each instance with its holes filled (a hole already owned by another cell stays)."""
    out = labels.copy()
    for index, window in enumerate(ndimage.find_objects(labels), start=1):
        if window is None:
            continue
        filled = ndimage.binary_fill_holes(labels[window] == index)
        region = out[window]
        region[filled & (region == 0)] = index
    return out
