"""Cell types: ``cell_type`` events against the ``cell_type`` column of ``tracks.csv``.

Rules:

- Each event's track is translated into a ground-truth track at the event's
  frame (``TrackMap``; without a tracks file the id is taken as the
  ground-truth id). Its true type is the type the ground truth gives that
  track most often (ties: the first in alphabetical order).
- Every event that reaches a ground-truth track is scored: accuracy per true
  type = events right / events on tracks of that type; overall accuracy and
  balanced accuracy (the mean over types present). Events that reach no
  ground-truth track are counted as unmatched; coverage = ground-truth tracks
  with at least one event / ground-truth tracks with a type.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from livecell.evaluation.stats import ratio
from livecell.evaluation.tables import CellTypeEvent, TrackTable
from livecell.evaluation.tracking import TrackResolver
from livecell.simulation.scene import CELL_TYPES


@dataclass(frozen=True, slots=True)
class TypeScores:
    cell_type: str
    events: int
    correct: int
    accuracy: float


@dataclass(frozen=True, slots=True)
class CellTypeReport:
    events: int
    scored: int
    unmatched_events: int
    accuracy: float
    balanced_accuracy: float
    per_type: tuple[TypeScores, ...]
    labels: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]
    truth_tracks: int
    covered_tracks: int
    coverage: float


def truth_types(tracks: TrackTable) -> dict[tuple[str, int], str]:
    """The type of each ground-truth ``(position, track)``; tracks without a type are left out."""
    votes: dict[tuple[str, int], Counter[str]] = defaultdict(Counter)
    for p, track, cell_type in zip(
        tracks.position.tolist(), tracks.track.tolist(), tracks.cell_type.tolist(), strict=True
    ):
        if cell_type:
            votes[(p, track)][cell_type] += 1
    return {
        key: min(counter.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        for key, counter in votes.items()
    }


def score_cell_types(
    truth: TrackTable, events: Sequence[CellTypeEvent], *, resolver: TrackResolver
) -> CellTypeReport:
    types = truth_types(truth)
    pairs: list[tuple[str, str]] = []  # (true, predicted)
    covered: set[tuple[str, int]] = set()
    for e in events:
        track = resolver.truth_track(e.position, e.track, e.t)
        true = types.get((e.position, track)) if track is not None else None
        if true is None or track is None:
            continue
        pairs.append((true, e.cell_type))
        covered.add((e.position, track))
    extra = sorted({v for pair in pairs for v in pair} - set(CELL_TYPES))
    labels = (*CELL_TYPES, *extra)
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for true, predicted in pairs:
        confusion[labels.index(true), labels.index(predicted)] += 1
    per_type = tuple(
        TypeScores(
            cell_type=name,
            events=int(confusion[k].sum()),
            correct=int(confusion[k, k]),
            accuracy=ratio(int(confusion[k, k]), int(confusion[k].sum())),
        )
        for k, name in enumerate(labels)
        if confusion[k].sum() or name in CELL_TYPES
    )
    present = [s.accuracy for s in per_type if s.events]
    return CellTypeReport(
        events=len(events),
        scored=len(pairs),
        unmatched_events=len(events) - len(pairs),
        accuracy=ratio(int(np.trace(confusion)), len(pairs)),
        balanced_accuracy=float(np.mean(present)) if present else float("nan"),
        per_type=per_type,
        labels=labels,
        confusion=tuple(tuple(int(v) for v in row) for row in confusion),
        truth_tracks=len(types),
        covered_tracks=len(covered),
        coverage=ratio(len(covered), len(types)),
    )
