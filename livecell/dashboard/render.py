"""Images the page shows, drawn server-side with OpenCV: the frame with its overlay, crops.

Pure functions of a :class:`~livecell.dashboard.views.FrameView` and the current
states (from the events): the nanowell frame with every well tinted and outlined
by its state and every tracked cell outlined by its own; the patch-mode frame
with each classified patch tinted by its reported state. The colours are the
legend's (``STATE_COLOURS``, ``PATCH_COLOURS``), served to the page by
``/api/state`` so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np
import numpy.typing as npt

from livecell.dashboard.views import FrameView

__all__ = [
    "PATCH_COLOURS",
    "STATE_COLOURS",
    "encode_png",
    "patch_colour",
    "render_frame",
]

STATE_COLOURS: dict[str, str] = {
    "live": "#3fb950",
    "contact": "#d29922",
    "early_necroptosis": "#db61a2",
    "death": "#f85149",
    "empty": "#8b949e",
}
"""Well and track states (nanowell mode), worst first in ``well_state``: death,
early necroptosis, contact, live, empty (no cell)."""

PATCH_COLOURS: dict[str, str] = {
    "live_control": "#3fb950",
    "live_treated": "#58a6ff",
    "apoptosis": "#f0883e",
    "necroptosis": "#db61a2",
    "necrosis": "#f85149",
    "live": "#3fb950",
    "death": "#f85149",
}
_SPARE = ("#a371f7", "#79c0ff", "#e3b341", "#56d4dd", "#ff7b72", "#7ee787")
_WELL_ALPHA = 0.22
_PATCH_ALPHA = 0.38


def patch_colour(classes: Sequence[str], index: int) -> str:
    """The legend colour of class ``index`` of ``classes``."""
    name = classes[index]
    return PATCH_COLOURS.get(name, _SPARE[index % len(_SPARE)])


def encode_png(image: npt.NDArray[np.uint8]) -> bytes:
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError(f"OpenCV could not encode an image of shape {image.shape} as PNG")
    return bytes(data.tobytes())


def render_frame(
    view: FrameView,
    *,
    well_states: Mapping[str, str],
    track_states: Mapping[int, str],
    patch_states: Sequence[Sequence[int]] | None = None,
) -> npt.NDArray[np.uint8]:
    """The frame in BGR with its overlay: wells and tracks (nanowell) or patches."""
    bgr = np.asarray(cv2.cvtColor(view.image, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    if view.wells:
        _draw_wells(bgr, view, well_states, track_states)
    if view.grid is not None and patch_states is not None:
        _draw_patches(bgr, view, patch_states)
    return bgr


def _bgr(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    r, g, b = (int(value[i : i + 2], 16) for i in (0, 2, 4))
    return (b, g, r)


def _draw_wells(
    bgr: npt.NDArray[np.uint8],
    view: FrameView,
    well_states: Mapping[str, str],
    track_states: Mapping[int, str],
) -> None:
    tint = bgr.copy()
    for well in view.wells:
        x0, y0, x1, y1 = well.box
        colour = _bgr(STATE_COLOURS[well_states.get(well.well, "empty")])
        cv2.rectangle(tint, (x0, y0), (x1 - 1, y1 - 1), colour, thickness=-1)
    cv2.addWeighted(tint, _WELL_ALPHA, bgr, 1 - _WELL_ALPHA, 0, dst=bgr)
    for well in view.wells:
        x0, y0, x1, y1 = well.box
        colour = _bgr(STATE_COLOURS[well_states.get(well.well, "empty")])
        cv2.rectangle(bgr, (x0, y0), (x1 - 1, y1 - 1), colour, thickness=2)
        for track, contour in well.outlines:
            state_colour = _bgr(STATE_COLOURS[track_states.get(track, "live")])
            cv2.polylines(bgr, [contour.reshape(-1, 1, 2)], True, state_colour, 1, cv2.LINE_AA)


def _draw_patches(
    bgr: npt.NDArray[np.uint8], view: FrameView, patch_states: Sequence[Sequence[int]]
) -> None:
    grid = view.grid
    if grid is None or not grid.rows or not grid.cols:
        return
    states = np.asarray(patch_states, dtype=np.int64)
    if states.shape != (grid.rows, grid.cols):
        return  # the grid changed: the states event of the new grid is still to come
    colours = np.zeros((grid.rows, grid.cols, 3), dtype=np.uint8)
    for index in range(len(grid.classes)):
        colours[states == index] = _bgr(patch_colour(grid.classes, index))
    height = min(bgr.shape[0], round(grid.rows * grid.patch_px * view.scale))
    width = min(bgr.shape[1], round(grid.cols * grid.patch_px * view.scale))
    if not height or not width:
        return
    big = cv2.resize(colours, (width, height), interpolation=cv2.INTER_NEAREST)
    mask = cv2.resize(
        (states >= 0).astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST
    ).astype(bool)
    region = bgr[:height, :width]
    blended = cv2.addWeighted(big, _PATCH_ALPHA, region, 1 - _PATCH_ALPHA, 0)
    region[mask] = blended[mask]
    step_y, step_x = height / grid.rows, width / grid.cols
    line = (40, 40, 40)
    for row in range(1, grid.rows):
        y = round(row * step_y)
        cv2.line(region, (0, y), (width - 1, y), line, 1)
    for col in range(1, grid.cols):
        x = round(col * step_x)
        cv2.line(region, (x, 0), (x, height - 1), line, 1)
