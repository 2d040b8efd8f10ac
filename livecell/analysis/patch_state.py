"""Per-patch state over time: hysteresis, one death and one early-necroptosis flag per patch.

Pure and streaming: one :class:`PatchTrack` per patch of a position's grid, fed the
model's probabilities for that patch once per frame (``None`` where the patch was
skipped as empty). Nothing here reads clocks or files, so a replay decides the same
things at the same frames.

Rules (``classes`` are the model's; a class whose name starts with ``live`` or is
``alive`` is a live state, every other class a death state):

- The frame's *call* is the most probable class. A death class counts only with a
  probability of at least ``death_min_confidence``; below that the call is live.
- A *run* is consecutive updates with the same call (all live calls are one run);
  a skipped frame ends the run.
- A death class becomes the patch's *held* state once its run reaches
  ``confirm_frames`` frames: one or two flickering frames are never a death. A held
  death state is left only after ``confirm_frames`` live calls in a row (or when
  another death class's run confirms).
- The reported state is the held death class, else the most probable *live* class
  of the frame (an unconfirmed death call reports the best live class), or -1 for a
  skipped patch.
- ``death``: the first time a patch holds a death state (once per patch lifetime):
  pathway = the class name (``"death"`` for a class that is not one of the three
  pathways), ``onset_t`` = the first frame of the confirming run, confidence = the
  mean probability of the class over that run.
- ``early_necroptosis``: before the patch's death, the necroptosis probability (not
  necessarily the top class) is at least ``early_threshold`` for ``early_frames``
  frames in a row; ``onset_t`` the first of them, confidence their mean. Once per
  patch. The model sees necroptotic RI changes hours before propidium iodide, so this
  is the lower, faster bar the live page and triggers use; the ``death`` follows when
  necroptosis holds ``confirm_frames`` frames at ``death_min_confidence``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["HysteresisParams", "PatchDecision", "PatchTrack", "death_pathway", "is_live_class"]

FloatArray = npt.NDArray[np.float32]
PATHWAYS = ("apoptosis", "necroptosis", "necrosis")
NECROPTOSIS = "necroptosis"
_LIVE_RUN = -2  # the run key of every live call
_NO_RUN = -1


def is_live_class(name: str) -> bool:
    return name.startswith("live") or name == "alive"


def death_pathway(name: str) -> str:
    """The ``death`` event's pathway for death class ``name``."""
    return name if name in PATHWAYS else "death"


@dataclass(frozen=True, slots=True)
class HysteresisParams:
    classes: tuple[str, ...]
    confirm_frames: int = 3
    death_min_confidence: float = 0.8
    early_threshold: float = 0.4
    early_frames: int = 2

    def __post_init__(self) -> None:
        if not any(is_live_class(c) for c in self.classes):
            raise ValueError(f"classes {self.classes} have no live class (live_*, alive)")
        if self.confirm_frames < 1 or self.early_frames < 1:
            raise ValueError("confirm_frames and early_frames must be at least 1")

    @property
    def live(self) -> npt.NDArray[np.bool_]:
        return np.array([is_live_class(c) for c in self.classes], dtype=bool)


@dataclass(frozen=True, slots=True)
class PatchDecision:
    """A ``death`` (``early`` False) or ``early_necroptosis`` (``early`` True) of one patch."""

    pathway: str
    onset_t: int
    confidence: float
    early: bool = False


@dataclass
class _Run:
    key: int = _NO_RUN
    start: int = 0
    length: int = 0
    confidence_sum: float = 0.0

    def extend(self, key: int, t: int, confidence: float) -> None:
        if key != self.key:
            self.key, self.start, self.length, self.confidence_sum = key, t, 0, 0.0
        self.length += 1
        self.confidence_sum += confidence

    def end(self) -> None:
        self.key, self.length, self.confidence_sum = _NO_RUN, 0, 0.0

    @property
    def mean(self) -> float:
        return self.confidence_sum / self.length if self.length else 0.0


@dataclass
class PatchTrack:
    """One patch's state; :meth:`update` once per frame, in frame order."""

    params: HysteresisParams
    held: int | None = None
    died: bool = False
    early_done: bool = False
    _run: _Run = field(default_factory=_Run)
    _necroptosis_run: _Run = field(default_factory=_Run)

    def update(self, t: int, probabilities: FloatArray | None) -> tuple[int, list[PatchDecision]]:
        """``(reported state, decisions)`` for frame ``t``; ``None``: skipped as empty."""
        p = self.params
        if probabilities is None:
            self._run.end()
            self._necroptosis_run.end()
            return -1, []
        probs = np.asarray(probabilities, dtype=np.float64)
        live = p.live
        best = int(np.argmax(probs))
        best_live = int(np.flatnonzero(live)[np.argmax(probs[live])])
        if live[best] or probs[best] < p.death_min_confidence:
            self._run.extend(_LIVE_RUN, t, float(probs[best_live]))
        else:
            self._run.extend(best, t, float(probs[best]))
        decisions = self._early(t, probs)
        run = self._run
        if run.length >= p.confirm_frames:
            if run.key == _LIVE_RUN:
                self.held = None
            elif run.key != self.held:
                self.held = run.key
                if not self.died:
                    self.died = True
                    name = p.classes[run.key]
                    decisions.append(PatchDecision(death_pathway(name), run.start, run.mean))
        return (self.held if self.held is not None else best_live), decisions

    def _early(self, t: int, probs: npt.NDArray[np.float64]) -> list[PatchDecision]:
        p = self.params
        if self.died or self.early_done or NECROPTOSIS not in p.classes:
            return []
        necroptosis = float(probs[p.classes.index(NECROPTOSIS)])
        if necroptosis < p.early_threshold:
            self._necroptosis_run.end()
            return []
        run = self._necroptosis_run
        run.extend(0, t, necroptosis)
        if run.length < p.early_frames:
            return []
        self.early_done = True
        return [PatchDecision(NECROPTOSIS, run.start, run.mean, early=True)]
