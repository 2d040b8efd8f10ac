"""Per-track decisions from the sequence models: cell type, death, early necroptosis.

Pure and streaming: each track owns one :class:`CellTypeVote` and one
:class:`DeathWatch`, fed the models' probabilities once per frame; each says at
most once that its decision is made. Nothing here reads clocks or files, so a
replay decides the same things at the same frames.

- Cell type: the running mean of the per-window probabilities; decided once the
  leading class has stayed the same for ``stable_frames`` frames with a mean
  confidence of at least ``min_confidence``.
- Death: a cell cannot come back to life, so the death probability is made
  monotone: at each frame the least probability over the last ``confirm_frames``
  frames (one high frame is not enough), then the running maximum of that. The
  death is decided when it reaches ``threshold``; its pathway is the leading death
  class of the window.
- Death onset, estimated once, at the deciding frame, from what has been seen up to
  it: the per-frame death probability of each of the track's last frames is the mean
  over the windows seen so far that reach at least ``onset_context_frames`` frames
  past it (the bidirectional model places a frame better once it has seen what
  follows; the frames nearer the call than that take the deciding window's value);
  the onset is the frame from which the probability stays above ``onset_threshold``
  on balance: the start of the run of last frames with the largest sum of
  ``p - onset_threshold`` (the change point of a step in the mean), so a frame or two
  dipping under the threshold does not push the onset past them.
  ``onset_context_frames`` None (or negative) uses the deciding window alone;
  ``onset_threshold=None`` is ``threshold``. The onset is never after the deciding
  frame, nor before the window's first frame. Front padding of a young track's window
  (repeats of its first frame) is dropped.
- Motility (with an ``arrest`` rule and the track's step lengths on the chip,
  :mod:`livecell.tracking.arrest`): a death is not called while the cell is still
  crawling (it is called at the first frame it has stopped and the probability still
  holds); the onset then moves to the frame the cell stopped, where the rule finds
  one near the model's onset; otherwise it stays.
- Mitosis: a cell rounding up to divide stops, rounds and brightens, and for the
  15-40 minutes before it divides looks like an early apoptosis. An apoptosis is
  therefore called only once its onset is ``apoptosis_hold_frames`` frames old: a
  dividing cell's track has ended by then (its daughters are new tracks). Swelling
  deaths (necroptosis, necrosis) do not look like rounding and are not held. When the
  track's frames end while it is still open (the acquisition or its position ended,
  or the daemon stops), nothing can settle the hold any more: :meth:`DeathWatch.decide_held`
  makes the held death then, with the onset it had (without it, every apoptosis that
  began in the last ``apoptosis_hold_frames`` frames would go unreported).
- Born dying: a track that appeared after the acquisition's first frame (``born_t``)
  and whose death would have its onset at its first frame is never called dead. Cells
  do not come into a closed well, and a daughter is born alive: such a track is a piece
  of a dying cell (a fragment its segmentation split off), whose death the cell's own
  track reports.
- Neither is decided before the track is ``min_track_frames`` frames old: in a
  well, a track that starts late is most often a segmentation fragment, and a
  window padded from one or two frames shows the model nothing it was trained on.
- Early necroptosis: necroptosis leads the death classes with at least
  ``early_threshold`` for ``confirm_frames`` frames in a row, before the death is
  decided: the swelling has begun but the cell is not yet called dead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from livecell.tracking.arrest import ArrestRule, arrest_frame, is_crawling

__all__ = ["CellTypeDecision", "CellTypeVote", "DeathDecision", "DeathWatch"]

FloatArray = npt.NDArray[np.float32]

LIVE = "live"
APOPTOSIS = "apoptosis"
NECROPTOSIS = "necroptosis"


@dataclass(frozen=True, slots=True)
class CellTypeDecision:
    cell_type: str
    confidence: float


@dataclass(frozen=True, slots=True)
class DeathDecision:
    """A death (``early`` False) or an early-necroptosis flag (``early`` True)."""

    pathway: str
    onset_t: int
    confidence: float
    early: bool = False


class CellTypeVote:
    def __init__(self, classes: tuple[str, ...], *, min_confidence: float, stable_frames: int):
        self.classes = classes
        self.min_confidence = min_confidence
        self.stable_frames = stable_frames
        self.decided: CellTypeDecision | None = None
        self._sum = np.zeros(len(classes), dtype=np.float64)
        self._frames = 0
        self._leader: int | None = None
        self._leader_frames = 0

    @property
    def best(self) -> CellTypeDecision | None:
        """The current estimate (the decision once made), for the tracks file."""
        if self.decided is not None:
            return self.decided
        if self._frames == 0:
            return None
        mean = self._sum / self._frames
        leader = int(np.argmax(mean))
        return CellTypeDecision(self.classes[leader], float(mean[leader]))

    def update(self, window_probs: FloatArray) -> CellTypeDecision | None:
        """Add one frame's per-window probabilities; return the decision once it is made."""
        if self.decided is not None:
            return None
        self._sum += window_probs
        self._frames += 1
        mean = self._sum / self._frames
        leader = int(np.argmax(mean))
        self._leader_frames = self._leader_frames + 1 if leader == self._leader else 1
        self._leader = leader
        if self._leader_frames >= self.stable_frames and mean[leader] >= self.min_confidence:
            self.decided = CellTypeDecision(self.classes[leader], float(mean[leader]))
            return self.decided
        return None


class DeathWatch:
    def __init__(
        self,
        classes: tuple[str, ...],
        *,
        threshold: float,
        confirm_frames: int,
        early_threshold: float,
        min_track_frames: int = 1,
        onset_threshold: float | None = None,
        onset_context_frames: int | None = None,
        arrest: ArrestRule | None = None,
        apoptosis_hold_frames: int = 0,
        born_t: int | None = None,
    ) -> None:
        if classes[0] != LIVE:
            raise ValueError(f"the death model's first class must be {LIVE!r}, got {classes}")
        self.classes = classes
        self.threshold = threshold
        self.onset_threshold = threshold if onset_threshold is None else onset_threshold
        self.onset_context_frames = (
            None
            if onset_context_frames is None or onset_context_frames < 0
            else onset_context_frames
        )
        # frame -> (sum, count) of its death probability over the windows that reach
        # onset_context_frames past it; only frames of the latest window are kept
        self._hindsight: dict[int, tuple[float, int]] = {}
        self.arrest = arrest
        self.apoptosis_hold_frames = apoptosis_hold_frames
        self.born_t = born_t
        self.born_dying = False
        self.confirm_frames = confirm_frames
        self.early_threshold = early_threshold
        self.min_track_frames = min_track_frames
        self.death: DeathDecision | None = None
        self.held: DeathDecision | None = None  # an apoptosis waiting on the hold, if any
        self._frames = 0
        self.early: DeathDecision | None = None
        self.probability = 0.0
        self._recent_dead: deque[float] = deque(maxlen=confirm_frames)
        self._necroptosis_frames = 0

    def update(
        self,
        frame_ts: npt.ArrayLike,
        frame_probs: FloatArray,
        window_probs: FloatArray,
        steps_px: Mapping[int, float] | None = None,
    ) -> list[DeathDecision]:
        """Add the model's output for the window ending at this frame; return new decisions.

        ``frame_ts [T]`` are the window's frame indices (oldest first; repeats where the
        window was padded), ``frame_probs [T, K]`` its per-frame probabilities and
        ``window_probs [K]`` the per-window ones, classes as in ``classes``.
        ``steps_px`` (frame -> centroid step into it, drift removed) is what the
        ``arrest`` rule reads.
        """
        if self.death is not None or self.born_dying:
            return []
        self.held = None
        self._frames += 1
        ts, dead = _unpadded(
            np.asarray(frame_ts, dtype=np.int64), 1.0 - frame_probs[:, 0].astype(np.float64)
        )
        self._remember(ts, dead)
        self._recent_dead.append(float(dead[-1]))
        if len(self._recent_dead) == self.confirm_frames:
            self.probability = max(self.probability, min(self._recent_dead))
        pathway_index = 1 + int(np.argmax(window_probs[1:]))
        pathway = self.classes[pathway_index]
        decisions: list[DeathDecision] = []
        necroptosis_p = float(window_probs[pathway_index]) if pathway == NECROPTOSIS else 0.0
        leads = necroptosis_p >= self.early_threshold
        self._necroptosis_frames = self._necroptosis_frames + 1 if leads else 0
        if self._frames < self.min_track_frames:
            return []
        if self.probability >= self.threshold:
            if self._crawling(steps_px, int(ts[-1])):
                return decisions  # dead by its look, but it still crawls: not yet
            onset = _onset(*self._onset_series(ts, dead), self.onset_threshold)
            onset = self._arrested_onset(onset, steps_px, int(ts[-1]))
            born_dying = self.born_t is not None and onset <= self.born_t
            if pathway == APOPTOSIS and int(ts[-1]) - onset < self.apoptosis_hold_frames:
                if not born_dying:  # it may be a cell rounding up to divide: not yet
                    self.held = DeathDecision(pathway, onset, self.probability)
                return decisions
            if born_dying:
                self.born_dying = True  # a piece of a dying cell: never called
                return decisions
            self.death = DeathDecision(pathway, onset, self.probability)
            decisions.append(self.death)
        elif self.early is None and self._necroptosis_frames >= self.confirm_frames:
            onset = _onset(ts, dead, self.early_threshold)
            self.early = DeathDecision(NECROPTOSIS, onset, necroptosis_p, early=True)
            decisions.append(self.early)
        return decisions

    def decide_held(self) -> DeathDecision | None:
        """The track has no more frames while open: make the death the apoptosis hold was
        waiting on at the latest update (None if it was waiting on none)."""
        if self.death is None and self.held is not None:
            self.death, self.held = self.held, None
            return self.death
        return None

    def _crawling(self, steps_px: Mapping[int, float] | None, last_t: int) -> bool:
        if self.arrest is None or steps_px is None:
            return False
        return is_crawling(steps_px, last_t, self.arrest)

    def _arrested_onset(self, onset: int, steps_px: Mapping[int, float] | None, last_t: int) -> int:
        """The frame the cell stopped crawling near the model's ``onset``, else ``onset``."""
        if self.arrest is None or steps_px is None:
            return onset
        stopped = arrest_frame(steps_px, onset, last_t, self.arrest)
        return onset if stopped is None else stopped

    def _remember(self, ts: npt.NDArray[np.int64], dead: npt.NDArray[np.float64]) -> None:
        """Add this window's probabilities of the frames it sees far enough past."""
        if self.onset_context_frames is None:
            return
        first, last = int(ts[0]), int(ts[-1])
        for t in [t for t in self._hindsight if t < first]:
            del self._hindsight[t]
        for t, p in zip(ts.tolist(), dead.tolist(), strict=True):
            if last - t >= self.onset_context_frames:
                total, count = self._hindsight.get(t, (0.0, 0))
                self._hindsight[t] = (total + p, count + 1)

    def _onset_series(
        self, ts: npt.NDArray[np.int64], dead: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """The per-frame death probabilities the onset is read from (see the module doc)."""
        if self.onset_context_frames is None:
            return ts, dead
        mean = [
            self._hindsight[t][0] / self._hindsight[t][1] if t in self._hindsight else p
            for t, p in zip(ts.tolist(), dead.tolist(), strict=True)
        ]
        return ts, np.array(mean, dtype=np.float64)

    def state_at(self, t: int) -> str:
        """The cell's state at frame ``t`` as known now: its pathway from onset on, else live."""
        if self.death is not None and t >= self.death.onset_t:
            return self.death.pathway
        return LIVE


def _unpadded(
    ts: npt.NDArray[np.int64], dead: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The window without its front padding: of the leading repeats of the first frame,
    the last one (the one next to the second frame) stands for it."""
    pad = int(np.sum(ts == ts[0])) - 1
    return ts[pad:], dead[pad:]


def _onset(ts: npt.NDArray[np.int64], dead: npt.NDArray[np.float64], threshold: float) -> int:
    """The frame from which the window's probabilities stay above ``threshold`` on
    balance: the start of the suffix with the largest sum of ``dead - threshold``
    (the earliest of equals; the last frame if every suffix sums below zero)."""
    suffix_sums = np.cumsum((dead - threshold)[::-1])[::-1]
    return int(ts[int(np.argmax(suffix_sums))])
