"""Pictures of simulated frames with their ground truth drawn on (``simulate --preview``).

Nanowell: well boxes and ids, each cell's outline coloured by state, its track
id, and a line between cells in contact. Holotomography: the maximum intensity
projection with the patch grid tinted by patch state. A legend in the corner.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from livecell.simulation.scene import EMPTY_PATCH, PATCH_STATES, SimFrame, SimSummary

STATE_BGR: dict[str, tuple[int, int, int]] = {
    "live": (80, 200, 80),
    "apoptosis": (0, 200, 255),
    "necroptosis": (255, 0, 255),
    "necrosis": (40, 40, 255),
    "live_control": (80, 200, 80),
    "live_treated": (255, 200, 0),
}
_MAX_SIDE_PX = 1400


def render_preview(frame: SimFrame, summary: SimSummary) -> np.ndarray:
    """A BGR uint8 picture of ``frame`` with its truth drawn on."""
    scale = min(1.0, _MAX_SIDE_PX / max(frame.labels.shape))
    picture = _grey_bgr(_plane(frame), scale)
    if frame.patches:
        _draw_patches(picture, frame, scale)
    for well in summary.wells.get(frame.position, ()):
        p0 = (int(well.x0 * scale), int(well.y0 * scale))
        p1 = (int(well.x1 * scale), int(well.y1 * scale))
        cv2.rectangle(picture, p0, p1, (200, 160, 60), 1)
        cv2.putText(
            picture,
            well.well,
            (p0[0] + 3, p0[1] + 12),
            cv2.FONT_HERSHEY_PLAIN,
            0.8,
            (200, 160, 60),
            1,
            cv2.LINE_AA,
        )
    _draw_cells(picture, frame, scale)
    _draw_contacts(picture, frame, summary, scale)
    _draw_legend(picture, frame)
    return picture


def write_preview(path: Path, frame: SimFrame, summary: SimSummary) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), render_preview(frame, summary)):
        raise OSError(f"cannot write {path}")


def _plane(frame: SimFrame) -> np.ndarray:
    """The 2D picture of a frame: phase channel, or the MIP of a volume."""
    image = frame.image
    if frame.axes == "ZYX":
        return np.asarray(image.max(axis=0))
    if frame.axes == "CYX":
        return np.asarray(image[0])
    if frame.axes == "ZCYX":
        return np.asarray(image[:, 0].max(axis=0))
    return image


def _grey_bgr(plane: np.ndarray, scale: float) -> np.ndarray:
    lo, hi = np.percentile(plane, (0.5, 99.5))
    grey = np.clip((plane.astype(np.float32) - lo) / max(float(hi - lo), 1e-6) * 255, 0, 255)
    grey = grey.astype(np.uint8)
    if scale < 1:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    bgr: np.ndarray = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    return bgr


def _draw_patches(picture: np.ndarray, frame: SimFrame, scale: float) -> None:
    rows = max(p.row for p in frame.patches) + 1
    size = frame.labels.shape[0] / rows if rows else 1
    tint = picture.copy()
    for patch in frame.patches:
        if patch.state == EMPTY_PATCH:
            continue
        x0, y0 = int(patch.col * size * scale), int(patch.row * size * scale)
        x1, y1 = int((patch.col + 1) * size * scale), int((patch.row + 1) * size * scale)
        cv2.rectangle(tint, (x0, y0), (x1, y1), STATE_BGR.get(patch.state, (255, 255, 255)), -1)
    cv2.addWeighted(tint, 0.3, picture, 0.7, 0, dst=picture)


def _draw_cells(picture: np.ndarray, frame: SimFrame, scale: float) -> None:
    small = cv2.resize(
        frame.labels.astype(np.int32),
        (picture.shape[1], picture.shape[0]),
        interpolation=cv2.INTER_NEAREST,
    )
    for cell in frame.cells:
        mask = (small == cell.track).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        colour = STATE_BGR.get(cell.state, (255, 255, 255))
        cv2.drawContours(picture, contours, -1, colour, 1, cv2.LINE_AA)
        at = (int(cell.x * scale) + 4, int(cell.y * scale) - 4)
        cv2.putText(
            picture, str(cell.track), at, cv2.FONT_HERSHEY_PLAIN, 0.8, colour, 1, cv2.LINE_AA
        )


def _draw_contacts(picture: np.ndarray, frame: SimFrame, summary: SimSummary, scale: float) -> None:
    where = {c.track: (int(c.x * scale), int(c.y * scale)) for c in frame.cells}
    for contact in summary.contacts.get(frame.position, ()):
        if contact.start_t <= frame.t <= contact.end_t:
            a, b = where.get(contact.track_a), where.get(contact.track_b)
            if a is not None and b is not None:
                cv2.line(picture, a, b, (255, 255, 255), 1, cv2.LINE_AA)


def _draw_legend(picture: np.ndarray, frame: SimFrame) -> None:
    states = PATCH_STATES if frame.patches else ("live", "apoptosis", "necroptosis", "necrosis")
    x, y = 8, picture.shape[0] - 12 - 16 * (len(states) + 1)
    cv2.rectangle(picture, (x - 4, y - 14), (x + 170, picture.shape[0] - 6), (0, 0, 0), -1)
    cv2.putText(
        picture,
        f"{frame.position}  t={frame.t}",
        (x, y),
        cv2.FONT_HERSHEY_PLAIN,
        1,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    for i, state in enumerate(states, start=1):
        cv2.putText(
            picture,
            state,
            (x, y + 16 * i),
            cv2.FONT_HERSHEY_PLAIN,
            1,
            STATE_BGR[state],
            1,
            cv2.LINE_AA,
        )
