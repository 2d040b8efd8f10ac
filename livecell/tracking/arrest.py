"""Motility arrest: the frame after which a crawling cell stood still.

A cell that starts to die stops migrating (it rounds up and lets go of the
substrate) before its shape or texture changes much, so where a death model
places an onset only roughly, the moment the track stopped moving places it to
the frame; and a cell still crawling is not dead yet. Pure: a track's step
lengths in, a frame (or a yes/no) out.

The arrest is a change point in the step lengths: the frame ``o`` whose
``window_frames`` steps up to and including the step into it have a median at
least ``contrast`` times the median of the (up to ``window_frames``) steps after
it, and that after-median is under ``still_px``. Medians, because a dying cell's
mask changes shape from frame to frame and a neighbour shoves it now and then:
single steps of 1-3 px happen on a dead cell, and a slow live one stops for a
frame. Of the change points within ``before_frames`` before and ``after_frames``
after the first estimate, the sharpest (highest ratio) wins.

Steps must be in chip coordinates, the stage's drift taken out (the nanowell
stage measures it on the well walls): the stage moves the whole field by about
as much per frame as a slow target cell crawls, and would hide the arrest.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ArrestRule", "arrest_frame", "is_crawling"]

MIN_STEPS = 2  # steps needed on each side of a change point
JITTER_FLOOR_PX = 0.05  # a median step below this is segmentation noise, not less motion


@dataclass(frozen=True, slots=True)
class ArrestRule:
    """What counts as an arrest, and how far from a first estimate to look for one.

    ``before_frames`` / ``after_frames``: searched this far before / after the
    estimate (a death model tends to place the onset late: the cell stops before it
    changes shape); ``window_frames``: steps compared on each side; ``contrast``:
    the median step before over the median after, at least; ``still_px``: the
    median step after, under (a dead cell's centroid jitters by 0.1-2 px under
    segmentation as its mask changes). ``crawl_frames``: a cell whose median step
    into its last this many frames is ``still_px`` or more is still crawling, so not
    dead yet (0: never held back).
    """

    before_frames: int = 16
    after_frames: int = 2
    window_frames: int = 6
    contrast: float = 3.0
    still_px: float = 2.0
    crawl_frames: int = 3

    def __post_init__(self) -> None:
        if min(self.before_frames, self.after_frames) < 0 or self.window_frames < MIN_STEPS:
            raise ValueError(
                f"ArrestRule: before_frames and after_frames must be >= 0 and "
                f"window_frames >= {MIN_STEPS}"
            )
        if self.crawl_frames < 0:
            raise ValueError("ArrestRule: crawl_frames must be >= 0")
        if self.contrast < 1 or self.still_px <= 0:
            raise ValueError("ArrestRule: contrast must be >= 1 and still_px > 0")

    @property
    def reach_frames(self) -> int:
        """How far before the model's onset the rule reads steps."""
        return self.before_frames + self.window_frames


def arrest_frame(
    steps_px: Mapping[int, float], near_t: int, last_t: int, rule: ArrestRule
) -> int | None:
    """The frame the cell stood still from, near ``near_t``; None if there is none.

    ``steps_px[t]`` is how far the centroid moved from frame ``t - 1`` to ``t``
    (frames not measured on both ends are absent). Only what is known at ``last_t``
    is used. Ties go to the frame nearer ``near_t``, then to the earlier one.
    """
    best: tuple[float, int, int] | None = None
    for o in range(near_t - rule.before_frames, near_t + rule.after_frames + 1):
        before = _steps(steps_px, o - rule.window_frames + 1, o)
        after = _steps(steps_px, o + 1, min(last_t, o + rule.window_frames))
        if len(before) < MIN_STEPS or len(after) < MIN_STEPS:
            continue
        still = statistics.median(after)
        ratio = statistics.median(before) / max(still, JITTER_FLOOR_PX)
        if still >= rule.still_px or ratio < rule.contrast:
            continue
        key = (-ratio, abs(o - near_t), o)
        best = key if best is None or key < best else best
    return None if best is None else best[2]


def is_crawling(steps_px: Mapping[int, float], last_t: int, rule: ArrestRule) -> bool:
    """Whether the median step into the last ``rule.crawl_frames`` frames up to
    ``last_t`` is at least ``rule.still_px`` (fewer than ``MIN_STEPS`` known: no)."""
    recent = _steps(steps_px, last_t - rule.crawl_frames + 1, last_t)
    return len(recent) >= MIN_STEPS and statistics.median(recent) >= rule.still_px


def _steps(steps_px: Mapping[int, float], first_t: int, last_t: int) -> list[float]:
    return [steps_px[t] for t in range(first_t, last_t + 1) if t in steps_px]
