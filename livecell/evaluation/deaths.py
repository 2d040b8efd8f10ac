"""Deaths: ``death`` events against ``deaths.csv``.

Rules:

- A predicted death is matched to at most one ground-truth death of the same
  position, one to one, by minimum total onset difference (Hungarian) among
  its candidates:

  - with a tracks file (nanowell): the ground-truth death of the track the
    event's track was matched to *at the event's frame* (``TrackMap``), whatever
    its onset. An event whose track was never matched falls back to the next rule.
  - without one: ground-truth deaths in the same well whose onset is within
    ``max_onset_gap`` frames (default 20); ties go to the same track id.
  - patch events (holotomography): ground-truth deaths whose cell reaches into
    the event's patch at the event's frame (or the cell's nearest frame): the
    disc of the cell's area around its centroid overlaps the patch; onset within
    ``max_onset_gap``. The patch size is that of the position's ``patch_states``
    events, else the default 160 px. A cell larger than a patch dies in each
    patch it covers, so the daemon reports it once per patch: the patch deaths
    left over whose cell was matched through another patch are ``duplicates``,
    counted apart and left out of precision (neither detected nor false).

- detected = matched ground-truth deaths; missed = ground-truth deaths left;
  false = predicted deaths left, duplicates apart. Recall = detected / truth,
  precision = detected / (predicted - duplicates).
- Onset error = predicted ``onset_t`` - true ``onset_t`` in frames (positive:
  late), over matches: mean, median, mean absolute. Onsets on time: matches
  within ``ONSET_TOLERANCE_FRAMES`` (2) of the truth, as a share of detected and
  of true deaths (the second also counts missed deaths as late).
- Frames seen: how many frames of a true death the acquisition holds, from its
  onset to the position's last frame in the ground-truth tracks. Truth, detected
  and on-time counts per bin of ``FRAMES_SEEN_BINS`` show how much of the misses
  is a death that began too near the end to be seen dying: an online call needs
  some frames of evidence after the onset (docs/nanowell.md).
- Lead time = ``marker_t`` - the event's ``t`` (the frame the death was
  reported from) in frames: how long before the fluorescence marker turns
  positive livecell said so. Positive is earlier than the marker. Over
  matches, and per true pathway.
- Pathway accuracy over matches whose event names a pathway; events saying
  only ``"death"`` are counted as unspecified and left out of it.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from livecell.evaluation.defaults import DEFAULT_MAX_ONSET_GAP
from livecell.evaluation.stats import FrameStats, frame_stats, ratio
from livecell.evaluation.tables import DeathEvent, TrackTable, TruthDeath
from livecell.evaluation.tracking import TrackResolver
from livecell.simulation.scene import DEATH_PATHWAYS, DEFAULT_PATCH_SIZE_PX

UNSPECIFIED = "death"
ONSET_TOLERANCE_FRAMES = 2
FRAMES_SEEN_BINS = (1, 5, 9, 17)  # lower edges: 1-4, 5-8, 9-16, 17 and more frames
_TIE_BREAK = 1e-3


@dataclass(frozen=True, slots=True)
class DeathMatch:
    position: str
    well: str
    truth_track: int
    predicted_track: int | None
    predicted_patch: tuple[int, int] | None
    truth_pathway: str
    predicted_pathway: str
    truth_onset_t: int
    predicted_onset_t: int
    reported_t: int
    marker_t: int
    onset_error: int  # predicted_onset_t - truth_onset_t
    lead_time: int  # marker_t - reported_t


@dataclass(frozen=True, slots=True)
class PathwayLead:
    pathway: str
    lead_time: FrameStats


@dataclass(frozen=True, slots=True)
class FramesSeenBin:
    """True deaths whose onset leaves ``first``..``last`` frames in the acquisition."""

    first: int
    last: int | None  # None: no upper bound
    truth: int
    detected: int
    on_time: int


@dataclass(frozen=True, slots=True)
class DeathReport:
    matching: str
    truth: int
    predicted: int
    detected: int
    missed: int
    false: int
    duplicates: int  # patch deaths of a cell another patch's death was matched to
    recall: float
    precision: float
    f1: float
    onset_error: FrameStats
    onsets_on_time: int  # matches within ONSET_TOLERANCE_FRAMES of the true onset
    onsets_on_time_of_detected: float
    onsets_on_time_of_truth: float
    lead_time: FrameStats
    lead_time_by_pathway: tuple[PathwayLead, ...]
    pathway_accuracy: float
    pathway_scored: int
    pathway_unspecified: int
    pathway_labels: tuple[str, ...]
    pathway_confusion: tuple[tuple[int, ...], ...]
    matches: tuple[DeathMatch, ...]
    missed_deaths: tuple[TruthDeath, ...]
    false_deaths: tuple[DeathEvent, ...]
    by_frames_seen: tuple[FramesSeenBin, ...]  # empty without ground-truth tracks


class _Where:
    """Where each ground-truth cell is, frame by frame, and how far it reaches (the radius
    of a disc of its area): for patch events."""

    def __init__(self, tracks: TrackTable | None) -> None:
        rows: dict[tuple[str, int], list[tuple[int, float, float, float]]] = defaultdict(list)
        if tracks is not None:
            for p, track, t, x, y, area in zip(
                tracks.position.tolist(),
                tracks.track.tolist(),
                tracks.t.tolist(),
                tracks.x.tolist(),
                tracks.y.tolist(),
                tracks.area.tolist(),
                strict=True,
            ):
                rows[(p, track)].append((t, x, y, math.sqrt(max(area, 0) / math.pi)))
        self._rows = {k: sorted(v) for k, v in rows.items()}

    def at(self, position: str, track: int, t: int) -> tuple[float, float, float] | None:
        """``(x, y, radius)`` of the cell at frame ``t`` (or its nearest frame)."""
        rows = self._rows.get((position, track))
        if not rows:
            return None
        i = bisect.bisect_left(rows, (t, -np.inf, -np.inf, -np.inf))
        nearest = min(
            (rows[j] for j in (i - 1, i) if 0 <= j < len(rows)), key=lambda r: (abs(r[0] - t), r[0])
        )
        return nearest[1], nearest[2], nearest[3]


def _covers(cell: tuple[float, float, float], patch: tuple[int, int], size_px: int) -> bool:
    """Whether the cell's disc reaches into the patch ``(row, col)``."""
    x, y, radius = cell
    row, col = patch
    nearest_x = min(max(x, col * size_px), (col + 1) * size_px)
    nearest_y = min(max(y, row * size_px), (row + 1) * size_px)
    return math.hypot(x - nearest_x, y - nearest_y) <= radius


def _candidates(
    event: DeathEvent,
    truth: Sequence[TruthDeath],
    *,
    resolver: TrackResolver | None,
    where: _Where,
    patch_size: int,
    max_onset_gap: int,
) -> list[tuple[int, float]]:
    """``(index into truth, cost)`` of the ground-truth deaths ``event`` may be matched to."""
    if event.track is not None and resolver is not None:
        track = resolver.truth_track(event.position, event.track, event.t)
        if track is not None:
            return [
                (j, abs(event.onset_t - d.onset_t))
                for j, d in enumerate(truth)
                if d.position == event.position and d.track == track
            ]
    out: list[tuple[int, float]] = []
    for j, d in enumerate(truth):
        gap = abs(event.onset_t - d.onset_t)
        if d.position != event.position or gap > max_onset_gap:
            continue
        if event.patch is not None:
            cell = where.at(d.position, d.track, event.t)
            if cell is None or not _covers(cell, event.patch, patch_size):
                continue
            out.append((j, gap))
        elif d.well == event.well:
            out.append((j, gap + (0.0 if d.track == event.track else _TIE_BREAK)))
    return out


def _matching(events: Sequence[DeathEvent], resolver: TrackResolver | None) -> str:
    """How the report's deaths were matched, in words: an event whose track never
    matched a true cell (or any event, without tracks) falls back to well and onset."""
    resolved = [
        resolver is not None and resolver.truth_track(e.position, e.track, e.t) is not None
        for e in events
        if e.track is not None
    ]
    ways = []
    if any(resolved):
        ways.append("track matches")
    if not all(resolved):
        ways.append("well and onset")
    if any(e.patch is not None for e in events):
        ways.append("patch and onset")
    return ", ".join(ways) or ("track matches" if resolver is not None else "well and onset")


def score_deaths(
    truth: Sequence[TruthDeath],
    events: Sequence[DeathEvent],
    *,
    resolver: TrackResolver | None,
    truth_tracks: TrackTable | None,
    patch_sizes: Mapping[str, int] | None = None,
    max_onset_gap: int = DEFAULT_MAX_ONSET_GAP,
) -> DeathReport:
    where = _Where(truth_tracks)
    sizes = patch_sizes or {}
    pairs: list[tuple[int, int]] = []  # (event index, truth index)
    patch_candidates: dict[int, set[int]] = {}  # patch event index -> truth indices
    for position in sorted({e.position for e in events}):
        ev = [i for i, e in enumerate(events) if e.position == position]
        candidates = [
            _candidates(
                events[i],
                truth,
                resolver=resolver,
                where=where,
                patch_size=sizes.get(position, DEFAULT_PATCH_SIZE_PX),
                max_onset_gap=max_onset_gap,
            )
            for i in ev
        ]
        patch_candidates |= {
            i: {j for j, _ in c} for i, c in zip(ev, candidates, strict=True) if events[i].patch
        }
        columns = sorted({j for c in candidates for j, _ in c})
        if not columns:
            continue
        col_of = {j: k for k, j in enumerate(columns)}
        finite = [cost for c in candidates for _, cost in c]
        big = 1.0 + len(ev) * (max(finite) + 1.0)  # worse than any set of real matches
        cost = np.full((len(ev), len(columns)), big)
        for r, c in enumerate(candidates):
            for j, value in c:
                cost[r, col_of[j]] = value
        rows, cols = linear_sum_assignment(cost)
        pairs += [(ev[r], columns[c]) for r, c in zip(rows, cols, strict=True) if cost[r, c] < big]

    matches = tuple(
        DeathMatch(
            position=truth[j].position,
            well=truth[j].well,
            truth_track=truth[j].track,
            predicted_track=events[i].track,
            predicted_patch=events[i].patch,
            truth_pathway=truth[j].pathway,
            predicted_pathway=events[i].pathway,
            truth_onset_t=truth[j].onset_t,
            predicted_onset_t=events[i].onset_t,
            reported_t=events[i].t,
            marker_t=truth[j].marker_t,
            onset_error=events[i].onset_t - truth[j].onset_t,
            lead_time=truth[j].marker_t - events[i].t,
        )
        for i, j in sorted(pairs, key=lambda ij: ij[1])
    )
    matched_events = {i for i, _ in pairs}
    matched_truth = {j for _, j in pairs}
    duplicates = {
        i for i, js in patch_candidates.items() if i not in matched_events and js & matched_truth
    }
    detected = len(pairs)
    scored = len(events) - len(duplicates)
    recall = ratio(detected, len(truth))
    precision = ratio(detected, scored)
    f1 = ratio(2 * detected, len(truth) + scored)
    on_time = sum(abs(m.onset_error) <= ONSET_TOLERANCE_FRAMES for m in matches)

    named = [m for m in matches if m.predicted_pathway != UNSPECIFIED]
    extra = sorted(
        ({m.truth_pathway for m in matches} | {m.predicted_pathway for m in matches})
        - {*DEATH_PATHWAYS, UNSPECIFIED}
    )
    labels = (*DEATH_PATHWAYS, *extra, UNSPECIFIED)
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for m in matches:
        confusion[labels.index(m.truth_pathway), labels.index(m.predicted_pathway)] += 1
    return DeathReport(
        matching=_matching(events, resolver),
        truth=len(truth),
        predicted=len(events),
        detected=detected,
        missed=len(truth) - detected,
        false=scored - detected,
        duplicates=len(duplicates),
        recall=recall,
        precision=precision,
        f1=f1,
        onset_error=frame_stats([m.onset_error for m in matches]),
        onsets_on_time=on_time,
        onsets_on_time_of_detected=ratio(on_time, detected),
        onsets_on_time_of_truth=ratio(on_time, len(truth)),
        lead_time=frame_stats([m.lead_time for m in matches]),
        lead_time_by_pathway=tuple(
            PathwayLead(p, frame_stats([m.lead_time for m in matches if m.truth_pathway == p]))
            for p in sorted({m.truth_pathway for m in matches})
        ),
        pathway_accuracy=ratio(
            sum(m.predicted_pathway == m.truth_pathway for m in named), len(named)
        ),
        pathway_scored=len(named),
        pathway_unspecified=len(matches) - len(named),
        pathway_labels=labels,
        pathway_confusion=tuple(tuple(int(v) for v in row) for row in confusion),
        matches=matches,
        missed_deaths=tuple(d for j, d in enumerate(truth) if j not in matched_truth),
        false_deaths=tuple(
            e for i, e in enumerate(events) if i not in matched_events and i not in duplicates
        ),
        by_frames_seen=_by_frames_seen(truth, matches, truth_tracks),
    )


def _by_frames_seen(
    truth: Sequence[TruthDeath], matches: Sequence[DeathMatch], truth_tracks: TrackTable | None
) -> tuple[FramesSeenBin, ...]:
    """Truth, detected and on-time counts by frames seen from onset to the last frame."""
    if truth_tracks is None or len(truth_tracks) == 0:
        return ()
    last_t: dict[str, int] = {}
    for position, t in zip(truth_tracks.position.tolist(), truth_tracks.t.tolist(), strict=True):
        last_t[position] = max(t, last_t.get(position, t))
    found = {(m.position, m.truth_track): m for m in matches}
    counts = np.zeros((len(FRAMES_SEEN_BINS), 3), dtype=np.int64)
    for d in truth:
        if d.position not in last_t:
            continue
        seen = last_t[d.position] - d.onset_t + 1
        row = max(bisect.bisect_right(FRAMES_SEEN_BINS, seen) - 1, 0)
        match = found.get((d.position, d.track))
        counts[row] += (
            1,
            match is not None,
            match is not None and abs(match.onset_error) <= ONSET_TOLERANCE_FRAMES,
        )
    uppers = [edge - 1 for edge in FRAMES_SEEN_BINS[1:]]
    return tuple(
        FramesSeenBin(first, last, int(n), int(hit), int(ok))
        for first, last, (n, hit, ok) in zip(
            FRAMES_SEEN_BINS, [*uppers, None], counts.tolist(), strict=True
        )
    )
