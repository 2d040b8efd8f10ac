"""From a frame and its overlay to the small things the page shows: pure numpy and OpenCV.

:func:`make_view` runs on the dashboard's thread, never the analysis thread. It
turns one analysed frame into a :class:`FrameView` (the frame downscaled to at
most ``max_side_px`` and scaled to 8 bits, the wells and cell outlines in the
downscaled pixels), the per-track crops at full resolution (nanowell mode) or
the patch mosaic (patch mode, every patch shrunk to ``crop_px``) for the
timelines, and each track's point (centroid, death probability) at this frame.
Nothing here keeps a reference to the frame's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from livecell.analysis.overlay import NanowellOverlay, Overlay, PatchOverlay
from livecell.analysis.patch_grid import projection
from livecell.frames import Frame

__all__ = ["FrameView", "PatchGrid", "TrackPoint", "ViewParts", "WellView", "make_view"]

U8 = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class WellView:
    """A well in the downscaled frame: its box and its cells' outlines, by track."""

    well: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in downscaled pixels
    box_frac: tuple[float, float, float, float]  # the same, as fractions of the frame
    tracks: tuple[int, ...]
    outlines: tuple[tuple[int, npt.NDArray[np.int32]], ...]  # (track, contour points)


@dataclass(frozen=True, slots=True)
class PatchGrid:
    """Patch mode's grid at this frame, and each kept patch's class probabilities."""

    patch_px: int
    rows: int
    cols: int
    classes: tuple[str, ...]
    probabilities: dict[tuple[int, int], tuple[float, ...]]


@dataclass(frozen=True, slots=True)
class FrameView:
    """One analysed frame as the page shows it; immutable once made."""

    acquisition: str
    position: str
    t: int
    image: U8  # grey, downscaled: longest side at most max_side_px
    scale: float  # downscaled pixels per frame pixel
    shape: tuple[int, int]  # the frame's (height, width)
    wells: tuple[WellView, ...] = ()
    grid: PatchGrid | None = None


@dataclass(frozen=True, slots=True)
class TrackPoint:
    """A tracked cell at one frame (frame pixels); ``p_death``: 1 - p(live) of the death
    model's window, where it ran at this frame."""

    track: int
    well: str
    t: int
    x: float
    y: float
    p_death: float | None


@dataclass(frozen=True, slots=True)
class ViewParts:
    view: FrameView
    points: tuple[TrackPoint, ...]
    crops: tuple[tuple[int, U8], ...]  # (track, crop) at this frame, nanowell mode
    mosaic: U8 | None  # patch mode: rows*crop_px x cols*crop_px, every patch shrunk


def make_view(
    frame: Frame, overlay: Overlay | None, *, max_side_px: int, crop_px: int
) -> ViewParts:
    """Everything the dashboard keeps of ``frame`` (see the module docstring)."""
    key = frame.key
    image = projection(frame.pixels, frame.axes)
    height, width = image.shape
    scale = min(1.0, max_side_px / max(height, width))
    small = image
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.float32)
    lo, hi = _display_range(small)
    view = FrameView(
        key.acquisition, key.position, key.t, to_u8(small, lo, hi), scale, (height, width)
    )
    if isinstance(overlay, NanowellOverlay):
        return _nanowell_parts(view, image, overlay, lo, hi, crop_px)
    if isinstance(overlay, PatchOverlay):
        return _patch_parts(view, image, overlay, lo, hi, crop_px)
    return ViewParts(view, (), (), None)


def to_u8(image: FloatArray, lo: float, hi: float) -> U8:
    """``image`` scaled so ``lo`` is black and ``hi`` white."""
    span = hi - lo if hi > lo else 1.0
    scaled = (np.nan_to_num(image, nan=lo) - lo) * (255.0 / span)
    return np.asarray(np.clip(scaled, 0, 255), dtype=np.uint8)


def _display_range(image: FloatArray) -> tuple[float, float]:
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, (0.5, 99.5))
    return float(lo), float(hi)


def _nanowell_parts(
    view: FrameView, image: FloatArray, overlay: NanowellOverlay, lo: float, hi: float, crop_px: int
) -> ViewParts:
    s = view.scale
    height, width = view.shape
    live = overlay.death_classes.index("live") if "live" in overlay.death_classes else None
    p_death = {
        track: 1.0 - probs[live] if live is not None and live < len(probs) else None
        for track, probs in overlay.death_probabilities
    }
    wells: list[WellView] = []
    points: list[TrackPoint] = []
    crops: list[tuple[int, U8]] = []
    for well in overlay.wells:
        outlines: list[tuple[int, npt.NDArray[np.int32]]] = []
        for cell in well.cells:
            points.append(
                TrackPoint(
                    cell.track, well.well, overlay.t, cell.x, cell.y, p_death.get(cell.track)
                )
            )
            crops.append((cell.track, to_u8(_crop(image, cell.x, cell.y, crop_px), lo, hi)))
            contour = _outline(well.labels, cell.labels)
            if contour is not None:
                points_px = (contour + np.array([well.x0, well.y0])) * s
                outlines.append((cell.track, np.round(points_px).astype(np.int32)))
        box = (round(well.x0 * s), round(well.y0 * s), round(well.x1 * s), round(well.y1 * s))
        frac = (well.x0 / width, well.y0 / height, well.x1 / width, well.y1 / height)
        tracks = tuple(c.track for c in well.cells)
        wells.append(WellView(well.well, box, frac, tracks, tuple(outlines)))
    full = FrameView(
        view.acquisition, view.position, view.t, view.image, s, view.shape, tuple(wells)
    )
    return ViewParts(full, tuple(points), tuple(crops), None)


def _patch_parts(
    view: FrameView, image: FloatArray, overlay: PatchOverlay, lo: float, hi: float, crop_px: int
) -> ViewParts:
    rows, cols, p = overlay.rows, overlay.cols, overlay.patch_px
    probabilities: dict[tuple[int, int], tuple[float, ...]] = {}
    kept = iter(overlay.probabilities)
    for row in range(rows):
        for col in range(cols):
            if overlay.kept[row, col]:
                probabilities[(row, col)] = tuple(float(v) for v in next(kept))
    mosaic: U8 | None = None
    if rows and cols:
        covered = image[: rows * p, : cols * p]
        shrunk = cv2.resize(covered, (cols * crop_px, rows * crop_px), interpolation=cv2.INTER_AREA)
        mosaic = to_u8(np.asarray(shrunk, dtype=np.float32), lo, hi)
    grid = PatchGrid(p, rows, cols, overlay.classes, probabilities)
    full = FrameView(
        view.acquisition, view.position, view.t, view.image, view.scale, view.shape, grid=grid
    )
    return ViewParts(full, (), (), mosaic)


def _crop(image: FloatArray, x: float, y: float, size: int) -> FloatArray:
    """A ``size`` square centred on ``(x, y)``, edge pixels repeated outside the frame."""
    half = size // 2
    cx, cy = round(x), round(y)
    ys = np.clip(np.arange(cy - half, cy - half + size), 0, image.shape[0] - 1)
    xs = np.clip(np.arange(cx - half, cx - half + size), 0, image.shape[1] - 1)
    return image[np.ix_(ys, xs)]


def _outline(
    labels: npt.NDArray[np.integer], cell_labels: tuple[int, ...]
) -> npt.NDArray[np.int32] | None:
    """The largest outer contour of the cell's labels, ``[N, 2]`` (x, y) in well pixels."""
    if not cell_labels:
        return None
    mask = np.isin(labels, cell_labels).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    largest = max(contours, key=cv2.contourArea)
    return np.asarray(largest, dtype=np.int32).reshape(-1, 2)
