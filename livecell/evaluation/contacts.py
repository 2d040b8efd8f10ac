"""Contacts: ``contact_start`` / ``contact_end`` events against ``contacts.csv``.

Rules:

- Intervals are inclusive frame ranges. Ground truth: ``[start_t, end_t]``
  (a contact still going on at the end has ``end_t`` = the last frame); rows of
  the same pair at most ``gap_frames`` frames apart (default 1) are one contact,
  the hysteresis the daemon applies (a single frame apart does not split a
  contact), so both sides count contacts the same way. Events:
  a ``contact_start`` at frame ``s`` and the next ``contact_end`` of the same
  pair at frame ``e`` make ``[s, e - 1]`` (``contact_end`` is reported at the
  first frame apart); a start never ended runs to the position's last frame;
  an end with no start runs from the position's first frame.
- Starts and ends are paired by the predicted ids the daemon gave them (its
  ``contact_end`` names the pair its ``contact_start`` named). Each interval is
  then translated into ground-truth ids (``TrackMap``; without a tracks file the
  ids are taken as ground-truth ids) frame by frame, and split where its
  translation changes: each run of frames says which two true cells touched then.
  Runs that land on the same true pair at most ``gap_frames`` apart are then
  merged, as the truth's are. So an identity switch costs a contact nothing here,
  whichever way it goes (a new predicted pair that is the same two cells, or the
  same predicted pair that becomes two other cells); it is counted where it
  belongs, in tracking. A track that cannot be translated keeps its predicted id,
  marked, and matches nothing.
- A predicted interval matches a ground-truth interval of the same position,
  well and (unordered) pair of tracks when their IoU (frames in both / frames
  in either) is at least ``min_iou`` (default 0.5); one to one, maximising
  total IoU. Precision = matched / predicted intervals, recall = matched /
  ground-truth intervals.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from livecell.evaluation.defaults import DEFAULT_CONTACT_GAP_FRAMES, DEFAULT_MIN_IOU
from livecell.evaluation.stats import FrameStats, frame_stats, ratio
from livecell.evaluation.tables import ContactEvent, TruthContact
from livecell.evaluation.tracking import TrackResolver

# A pair member is a ground-truth id, or ("predicted", id) when it could not be translated.
Member = int | tuple[str, int]


@dataclass(frozen=True, slots=True)
class Interval:
    position: str
    well: str
    tracks: tuple[Member, Member]
    start_t: int
    end_t: int

    @property
    def frames(self) -> int:
        return self.end_t - self.start_t + 1


@dataclass(frozen=True, slots=True)
class ContactMatch:
    truth: Interval
    predicted: Interval
    iou: float


@dataclass(frozen=True, slots=True)
class ContactReport:
    min_iou: float
    gap_frames: int
    truth: int
    predicted: int
    matched: int
    precision: float
    recall: float
    f1: float
    mean_iou: float
    start_error: FrameStats
    end_error: FrameStats
    matches: tuple[ContactMatch, ...]
    missed: tuple[Interval, ...]
    false: tuple[Interval, ...]


def iou(a: Interval, b: Interval) -> float:
    overlap = min(a.end_t, b.end_t) - max(a.start_t, b.start_t) + 1
    if overlap <= 0:
        return 0.0
    return overlap / (a.frames + b.frames - overlap)


def _pair(a: Member, b: Member) -> tuple[Member, Member]:
    return (a, b) if repr(a) <= repr(b) else (b, a)


def truth_intervals(
    contacts: Sequence[TruthContact], *, gap_frames: int = DEFAULT_CONTACT_GAP_FRAMES
) -> list[Interval]:
    """``contacts.csv`` rows as intervals, those of a pair at most ``gap_frames`` apart merged."""
    rows = [
        Interval(c.position, c.well, _pair(c.track_a, c.track_b), c.start_t, c.end_t)
        for c in contacts
    ]
    return _merged(rows, gap_frames)


def _merged(intervals: Sequence[Interval], gap_frames: int) -> list[Interval]:
    """Intervals of the same position, well and pair at most ``gap_frames`` apart (or
    overlapping) joined into one; sorted."""
    by_key: dict[tuple[str, str, tuple[Member, Member]], list[Interval]] = defaultdict(list)
    for i in intervals:
        by_key[(i.position, i.well, i.tracks)].append(i)
    out: list[Interval] = []
    for key, rows in by_key.items():
        rows.sort(key=lambda i: i.start_t)
        start, end = rows[0].start_t, rows[0].end_t
        for i in rows[1:]:
            if i.start_t - end - 1 > gap_frames:
                out.append(Interval(*key, start, end))
                start = i.start_t
            end = max(end, i.end_t)
        out.append(Interval(*key, start, end))
    return sorted(out, key=lambda i: (i.position, i.well, repr(i.tracks), i.start_t))


def predicted_intervals(
    events: Sequence[ContactEvent],
    *,
    resolver: TrackResolver,
    first_t: Mapping[str, int],
    last_t: Mapping[str, int],
    gap_frames: int = DEFAULT_CONTACT_GAP_FRAMES,
) -> list[Interval]:
    """Pair starts with ends by predicted ids, translate each interval frame by frame
    into runs of one true pair, then merge runs of the same true pair at most
    ``gap_frames`` apart."""
    open_starts: dict[tuple[str, str, tuple[int, int]], list[int]] = defaultdict(list)
    spans: list[tuple[str, str, tuple[int, int], int, int]] = []
    ordered = sorted(events, key=lambda e: (e.t, e.start))  # ends before starts in a frame
    for e in ordered:
        a, b = sorted(e.tracks)
        key = (e.position, e.well, (a, b))
        if e.start:
            open_starts[key].append(e.t)
            continue
        starts = open_starts[key]
        start = starts.pop(0) if starts else first_t.get(e.position, e.t)
        spans.append((*key, start, max(start, e.t - 1)))
    for (position, well, pair), starts in open_starts.items():
        for start in starts:
            spans.append((position, well, pair, start, max(start, last_t.get(position, start))))
    runs = [
        run
        for position, well, pair, start, end in spans
        for run in _translated_runs(resolver, position, well, pair, start, end)
    ]
    return _merged(runs, gap_frames)


def _translated_runs(
    resolver: TrackResolver,
    position: str,
    well: str,
    pair: tuple[int, int],
    start_t: int,
    end_t: int,
) -> list[Interval]:
    """``start_t..end_t`` of the predicted ``pair`` cut into runs of one ground-truth pair."""

    def member(track: int, t: int) -> Member:
        found = resolver.truth_track(position, track, t)
        return ("predicted", track) if found is None else found

    runs: list[Interval] = []
    run_start, run_pair = start_t, _pair(member(pair[0], start_t), member(pair[1], start_t))
    for t in range(start_t + 1, end_t + 1):
        true_pair = _pair(member(pair[0], t), member(pair[1], t))
        if true_pair != run_pair:
            runs.append(Interval(position, well, run_pair, run_start, t - 1))
            run_start, run_pair = t, true_pair
    runs.append(Interval(position, well, run_pair, run_start, end_t))
    return runs


def score_contacts(
    truth: Sequence[Interval],
    predicted: Sequence[Interval],
    *,
    min_iou: float = DEFAULT_MIN_IOU,
    gap_frames: int = DEFAULT_CONTACT_GAP_FRAMES,
) -> ContactReport:
    """Match intervals; ``gap_frames`` only records how both sides were merged."""
    by_key_truth: dict[tuple[str, str, tuple[Member, Member]], list[int]] = defaultdict(list)
    by_key_predicted: dict[tuple[str, str, tuple[Member, Member]], list[int]] = defaultdict(list)
    for j, interval in enumerate(truth):
        by_key_truth[(interval.position, interval.well, interval.tracks)].append(j)
    for i, interval in enumerate(predicted):
        by_key_predicted[(interval.position, interval.well, interval.tracks)].append(i)

    matches: list[tuple[int, int, float]] = []  # (truth index, predicted index, iou)
    for key, truth_rows in by_key_truth.items():
        predicted_rows = by_key_predicted.get(key, [])
        if not predicted_rows:
            continue
        scores = np.array(
            [[iou(truth[j], predicted[i]) for i in predicted_rows] for j in truth_rows]
        )
        # Most matches first, then most total IoU: a match is worth more than any IoU sum.
        weights = np.where(scores >= min_iou, scores + len(truth_rows) + 1, 0.0)
        rows, cols = linear_sum_assignment(weights, maximize=True)
        matches += [
            (truth_rows[r], predicted_rows[c], float(scores[r, c]))
            for r, c in zip(rows, cols, strict=True)
            if scores[r, c] >= min_iou
        ]
    matches.sort()
    matched_truth = {j for j, _, _ in matches}
    matched_predicted = {i for _, i, _ in matches}
    n = len(matches)
    return ContactReport(
        min_iou=min_iou,
        gap_frames=gap_frames,
        truth=len(truth),
        predicted=len(predicted),
        matched=n,
        precision=ratio(n, len(predicted)),
        recall=ratio(n, len(truth)),
        f1=ratio(2 * n, len(truth) + len(predicted)),
        mean_iou=float(np.mean([v for _, _, v in matches])) if matches else float("nan"),
        start_error=frame_stats([predicted[i].start_t - truth[j].start_t for j, i, _ in matches]),
        end_error=frame_stats([predicted[i].end_t - truth[j].end_t for j, i, _ in matches]),
        matches=tuple(ContactMatch(truth[j], predicted[i], v) for j, i, v in matches),
        missed=tuple(t for j, t in enumerate(truth) if j not in matched_truth),
        false=tuple(p for i, p in enumerate(predicted) if i not in matched_predicted),
    )
