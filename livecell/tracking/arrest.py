"""Motility arrest: the frame after which a crawling cell stood still.

A cell that starts to die stops migrating (it rounds up and lets go of the
substrate) before its shape or texture changes much, so where a death model
places an onset only roughly, the moment the track stopped moving places it to
the frame. Pure: a track's step lengths in, a frame (or None) out.

Steps must be in chip coordinates, the stage's drift taken out (the nanowell
stage measures it on the well walls): the stage moves the whole field by about
as much per frame as a slow target cell crawls, and would hide the arrest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ArrestRule", "arrest_frame"]


@dataclass(frozen=True, slots=True)
class ArrestRule:
    """What counts as an arrest, and how far from a first estimate to look for one.

    ``moving_px``: the step into the last moving frame is at least this long;
    ``still_px``: each of the next ``still_frames`` steps is shorter than this (a
    still cell's centroid jitters by about 0.1-0.4 px under segmentation);
    ``reach_frames``: searched within this many frames of the first estimate.
    """

    reach_frames: int = 8
    moving_px: float = 0.3
    still_px: float = 1.0
    still_frames: int = 2

    def __post_init__(self) -> None:
        if self.reach_frames < 0 or self.still_frames < 1:
            raise ValueError("ArrestRule: reach_frames must be >= 0 and still_frames >= 1")
        if self.moving_px < 0 or self.still_px <= 0:
            raise ValueError("ArrestRule: moving_px must be >= 0 and still_px > 0")


def arrest_frame(
    steps_px: Mapping[int, float], near_t: int, last_t: int, rule: ArrestRule
) -> int | None:
    """The last moving frame before the cell stood still, nearest ``near_t``; None if none.

    ``steps_px[t]`` is how far the centroid moved from frame ``t - 1`` to ``t``
    (frames not measured on both ends are absent and never count as still).
    Only what is known at ``last_t`` is used: an arrest at ``o`` needs frames
    ``o + 1 .. o + still_frames`` at or before it. Ties go to the earlier frame.
    """
    found: list[tuple[int, int]] = []
    for o in range(near_t - rule.reach_frames, near_t + rule.reach_frames + 1):
        if o + rule.still_frames > last_t or steps_px.get(o, 0.0) < rule.moving_px:
            continue
        after = [steps_px.get(o + k) for k in range(1, rule.still_frames + 1)]
        if all(step is not None and step < rule.still_px for step in after):
            found.append((abs(o - near_t), o))
    return min(found)[1] if found else None
