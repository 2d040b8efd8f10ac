"""``score`` (pure, over parsed tables) and ``evaluate`` (the same, from files).

Which sections are scored:

- patch states: ground truth has ``patches.csv`` and there are ``patch_states`` events;
- tracking: ground truth has ``tracks.csv`` and a tracks file is given;
- CTC: a result folder is given;
- deaths: ground truth has ``deaths.csv``, events are given, and there is a death on
  either side;
- contacts: ground truth has ``contacts.csv``, events are given, and there is a
  contact on either side;
- cell types: ground truth has ``tracks.csv``, events are given, and there are
  ``cell_type`` events or typed ground-truth cells in wells (nanowell).

With a tracks file, an event's track id is read through the tracking matches at
the event's frame. Without one, deaths are matched by well and onset, and the
track ids of contacts and cell types are taken as ground-truth ids (right only
when the analysis ran on ground-truth tracks); a note in the report says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livecell.evaluation import loaders
from livecell.evaluation.cell_types import score_cell_types
from livecell.evaluation.contacts import predicted_intervals, score_contacts, truth_intervals
from livecell.evaluation.ctc import CtcScores, score_ctc
from livecell.evaluation.deaths import score_deaths
from livecell.evaluation.defaults import (
    DEFAULT_CONTACT_GAP_FRAMES,
    DEFAULT_MAX_DISTANCE_PX,
    DEFAULT_MAX_ONSET_GAP,
    DEFAULT_MIN_IOU,
)
from livecell.evaluation.errors import InputError
from livecell.evaluation.patches import align_patches, score_patches
from livecell.evaluation.report import Report
from livecell.evaluation.tables import EventSet, GroundTruth, TrackTable
from livecell.evaluation.tracking import (
    MotScores,
    SameIds,
    TrackMap,
    TrackResolver,
    score_tracking,
)
from livecell.simulation.scene import CELL_TYPES, DEFAULT_PATCH_SIZE_PX

FEW_MATCHES_SHARE = 0.5  # fewer ground-truth cells matched than this: a note asks why


@dataclass(frozen=True, slots=True)
class ScoringOptions:
    """The matching thresholds; every one is written into the report it produced."""

    max_distance_px: float = DEFAULT_MAX_DISTANCE_PX
    max_onset_gap: int = DEFAULT_MAX_ONSET_GAP
    min_contact_iou: float = DEFAULT_MIN_IOU
    contact_gap_frames: int = DEFAULT_CONTACT_GAP_FRAMES
    truth_patch_size: int = DEFAULT_PATCH_SIZE_PX

    def __post_init__(self) -> None:
        if not self.max_distance_px > 0:
            raise InputError("--max-distance", f"must be positive, not {self.max_distance_px}")
        if self.max_onset_gap < 0:
            raise InputError("--max-onset-gap", f"must be 0 or more, not {self.max_onset_gap}")
        if not 0 < self.min_contact_iou <= 1:
            raise InputError("--min-contact-iou", f"must be in (0, 1], not {self.min_contact_iou}")
        if self.contact_gap_frames < 0:
            raise InputError(
                "--contact-gap-frames", f"must be 0 or more, not {self.contact_gap_frames}"
            )
        if self.truth_patch_size <= 0:
            raise InputError("truth_patch_size", f"must be positive, not {self.truth_patch_size}")


def _frame_range(truth: GroundTruth) -> tuple[dict[str, int], dict[str, int]]:
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for table in (truth.tracks, truth.patches):
        if table is None:
            continue
        for p, t in zip(table.position.tolist(), table.t.tolist(), strict=True):
            first[p] = min(first.get(p, t), t)
            last[p] = max(last.get(p, t), t)
    return first, last


def _positions_note(what: str, predicted: set[str], truth: set[str]) -> list[str]:
    if predicted and truth and not predicted & truth:
        return [
            f"{what}: no position in common with the ground truth "
            f"({', '.join(sorted(predicted)[:5])} vs {', '.join(sorted(truth)[:5])})"
        ]
    return []


def _few_matches_note(overall: MotScores) -> list[str]:
    """A tracks file whose cells mostly match no true cell is likely of another acquisition."""
    if overall.num_objects and overall.num_matches < FEW_MATCHES_SHARE * overall.num_objects:
        return [
            f"--tracks: only {overall.num_matches} of {overall.num_objects} ground-truth "
            "cells matched a tracked cell; are these the tracks of this acquisition?"
        ]
    return []


def _nothing_to_score_note(events: EventSet) -> list[str]:
    scorable = events.patch_states or events.deaths or events.contacts or events.cell_types
    if scorable:
        return []
    if not events.kinds_seen:
        return ["--events: the file holds no events"]
    held = ", ".join(f"{kind} {count}" for kind, count in sorted(events.kinds_seen.items()))
    return [f"--events: no patch_states, death, contact or cell_type events (it holds {held})"]


def score(
    truth: GroundTruth,
    *,
    events: EventSet | None = None,
    tracks: TrackTable | None = None,
    ctc: Sequence[CtcScores] | None = None,
    options: ScoringOptions = ScoringOptions(),  # frozen, so one shared default is safe
    ground_truth: str = "",
    inputs: Sequence[tuple[str, str]] = (),
) -> Report:
    """Score parsed predictions against parsed ground truth. No files, no clocks."""
    notes: list[str] = []
    truth_positions = set(truth.tracks.position.tolist()) if truth.tracks is not None else set()
    if truth.patches is not None:
        truth_positions |= set(truth.patches.position.tolist())

    tracking = None
    track_map: TrackMap | None = None
    if tracks is not None:
        notes += _positions_note("--tracks", set(tracks.position.tolist()), truth_positions)
        if truth.tracks is None:
            notes.append("tracking not scored: the ground truth has no tracks.csv")
        else:
            tracking, track_map = score_tracking(
                truth.tracks, tracks, max_distance_px=options.max_distance_px
            )
            notes += _few_matches_note(tracking.overall)
    resolver: TrackResolver
    if track_map is not None:
        resolver = track_map
    else:
        resolver = SameIds.of(truth.tracks) if truth.tracks is not None else SameIds(None)

    patches = deaths = contacts = cell_types = None
    if events is not None:
        event_positions = {e.position for e in events.patch_states}
        event_positions |= {e.position for e in events.deaths}
        event_positions |= {e.position for e in events.contacts}
        event_positions |= {e.position for e in events.cell_types}
        notes += _positions_note("--events", event_positions, truth_positions)
        notes += _nothing_to_score_note(events)
        no_tracks = (
            "no tracks file"
            if tracks is None
            else "tracks file not used (the ground truth has no tracks.csv)"
        )
        if track_map is None and any(e.track is not None for e in events.deaths):
            notes.append(f"{no_tracks}: deaths are matched by well and onset")
        if track_map is None and (events.contacts or events.cell_types):
            notes.append(
                f"{no_tracks}: the track ids of contacts and cell types are taken as "
                "ground-truth ids"
            )
        if truth.tracks is None and any(e.patch is not None for e in events.deaths):
            notes.append(
                "patch deaths cannot match: the ground truth has no tracks.csv to place "
                "its cells in patches"
            )

        if truth.patches is not None and events.patch_states:
            calls = align_patches(
                truth.patches, events.patch_states, truth_patch_size=options.truth_patch_size
            )
            patches = score_patches(calls)
        elif truth.patches is not None and len(truth.patches):
            notes.append("patch states not scored: no patch_states events")
        elif events.patch_states:
            notes.append("patch states not scored: the ground truth has no patches.csv")

        if truth.deaths is not None and (truth.deaths or events.deaths):
            patch_sizes = {e.position: e.patch_size for e in events.patch_states}
            deaths = score_deaths(
                truth.deaths,
                events.deaths,
                resolver=track_map,
                truth_tracks=truth.tracks,
                patch_sizes=patch_sizes,
                max_onset_gap=options.max_onset_gap,
            )
        elif events.deaths:
            notes.append("deaths not scored: the ground truth has no deaths.csv")
        elif truth.deaths is not None:
            notes.append("deaths not scored: no deaths in the ground truth nor in the events")

        if truth.contacts is not None and (truth.contacts or events.contacts):
            first, last = _frame_range(truth)
            contacts = score_contacts(
                truth_intervals(truth.contacts, gap_frames=options.contact_gap_frames),
                predicted_intervals(
                    events.contacts,
                    resolver=resolver,
                    first_t=first,
                    last_t=last,
                    gap_frames=options.contact_gap_frames,
                ),
                min_iou=options.min_contact_iou,
                gap_frames=options.contact_gap_frames,
            )
        elif events.contacts:
            notes.append("contacts not scored: the ground truth has no contacts.csv")
        elif truth.contacts is not None:
            notes.append("contacts not scored: no contacts in the ground truth nor in the events")

        if truth.tracks is not None:
            typed_in_wells = bool(
                np.any(np.isin(truth.tracks.cell_type, CELL_TYPES) & (truth.tracks.well != ""))
            )
            if events.cell_types or typed_in_wells:
                cell_types = score_cell_types(truth.tracks, events.cell_types, resolver=resolver)
        elif events.cell_types:
            notes.append("cell types not scored: the ground truth has no tracks.csv")

    return Report(
        ground_truth=ground_truth,
        inputs=tuple(inputs),
        patches=patches,
        tracking=tracking,
        ctc=tuple(ctc) if ctc is not None else None,
        deaths=deaths,
        contacts=contacts,
        cell_types=cell_types,
        event_counts=tuple(events.kinds_seen.items()) if events is not None else (),
        notes=tuple(notes),
    )


def evaluate(
    ground_truth_dir: str | Path,
    *,
    events: str | Path | None = None,
    tracks: str | Path | None = None,
    ctc_results: str | Path | None = None,
    options: ScoringOptions = ScoringOptions(),  # frozen, so one shared default is safe
) -> Report:
    """Read the ground-truth folder and the given results, and score them.

    ``events``: livecell's events file (JSON Lines); ``tracks``: its tracks file
    (CSV); ``ctc_results``: a Cell Tracking Challenge result folder (see ``ctc``).
    Raises ``InputError`` for inputs that are missing, unreadable or malformed.
    """
    if events is None and tracks is None and ctc_results is None:
        raise InputError("inputs", "nothing to score: give events, tracks or a CTC result folder")
    folder = Path(ground_truth_dir)
    truth = loaders.load_ground_truth(folder)
    inputs: list[tuple[str, str]] = []
    event_set = track_table = None
    if events is not None:
        event_set = loaders.load_events(Path(events))
        inputs.append(("events", str(events)))
    if tracks is not None:
        track_table = loaders.load_tracks(Path(tracks))
        inputs.append(("tracks", str(tracks)))
    ctc_scores = None
    notes: list[str] = []
    if ctc_results is not None:
        sequences, unscored = loaders.ctc_sequences(folder, Path(ctc_results))
        ctc_scores = [score_ctc(p, gt, res) for p, gt, res in sequences]
        inputs.append(("ctc", str(ctc_results)))
        if unscored:
            notes.append(f"CTC: no result for position(s) {', '.join(unscored)}")
    report = score(
        truth,
        events=event_set,
        tracks=track_table,
        ctc=ctc_scores,
        options=options,
        ground_truth=str(folder),
        inputs=inputs,
    )
    return dataclasses.replace(report, notes=(*report.notes, *notes)) if notes else report
