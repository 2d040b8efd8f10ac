"""Acceptance 2 of issue 3: ground truth scores perfect against itself, and each injected
error lowers exactly the metric it should and no other.

Scenes come from ``evaluation_scenes.make_scene`` with a hypothesis-drawn seed and
shape; the perfect predictions from ``livecell.evaluation.oracle``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from evaluation_scenes import (
    Scene,
    changed,
    make_scene,
    swap_identities,
    truth_of,
    with_fields,
    with_patch_class,
    without,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livecell.evaluation import Report, score
from livecell.evaluation.deaths import ONSET_TOLERANCE_FRAMES
from livecell.evaluation.oracle import perfect_events, perfect_tracks
from livecell.evaluation.tables import EventSet, GroundTruth, TrackTable, event_set
from livecell.simulation.scene import EMPTY_PATCH, PATCH_STATES

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def scenes(draw: st.DrawFn) -> Scene:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return make_scene(
        rng,
        positions=draw(st.integers(1, 2)),
        frames=draw(st.integers(3, 9)),
        wells=draw(st.integers(1, 3)),
        max_cells=draw(st.integers(1, 4)),
        patch_grid=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
    )


def events_of(records: list[dict[str, Any]]) -> EventSet:
    return event_set(enumerate(records, start=1), source="events")


def scored(truth: GroundTruth, records: list[dict[str, Any]], tracks: TrackTable | None) -> Report:
    return score(truth, events=events_of(records), tracks=tracks)


def assert_perfect(report: Report, *, with_tracks: bool) -> None:
    p = report.patches
    assert p is not None
    assert p.accuracy == p.balanced_accuracy == p.macro_f1 == 1.0
    assert p.cells_skipped == p.empty_called == 0
    assert p.macro_auroc in (None, 1.0)
    for c in p.per_class:
        assert c.support == c.predicted
        if c.support:
            assert c.precision == c.recall == c.f1 == 1.0
    off_diagonal = np.array(p.confusion) - np.diag(np.diag(np.array(p.confusion)))
    assert not off_diagonal.any()

    if with_tracks:
        t = report.tracking
        assert t is not None
        assert t.overall.mota == t.overall.idf1 == 1.0
        assert t.overall.num_switches == t.overall.num_misses == t.overall.num_false_positives == 0
        assert all(w.scores.mota == w.scores.idf1 == 1.0 for w in t.per_well)
    else:
        assert report.tracking is None

    d = report.deaths
    assert d is not None
    assert d.detected == d.truth
    assert d.missed == d.false == 0
    assert d.recall == d.precision == d.f1 == 1.0
    assert d.onset_error.mean_abs == 0.0
    assert d.pathway_accuracy == 1.0
    assert all(m.lead_time == m.marker_t - m.truth_onset_t for m in d.matches)

    c = report.contacts
    if c is not None:
        assert c.matched == c.truth == c.predicted
        assert c.truth == 0 or (c.precision == c.recall == c.mean_iou == 1.0)

    ct = report.cell_types
    assert ct is not None
    assert ct.accuracy == ct.balanced_accuracy == ct.coverage == 1.0
    assert ct.unmatched_events == 0


@SETTINGS
@given(scenes())
def test_ground_truth_against_itself_is_perfect(scene: Scene) -> None:
    truth = truth_of(scene)
    records = perfect_events(truth)
    assert_perfect(scored(truth, records, perfect_tracks(truth)), with_tracks=True)
    assert_perfect(scored(truth, records, None), with_tracks=False)


def _only(changes: set[str], prefixes: tuple[str, ...]) -> set[str]:
    """The changes outside ``prefixes``: must be empty."""
    return {c for c in changes if not c.startswith(prefixes)}


@SETTINGS
@given(scenes(), st.data())
def test_identity_swap_lowers_mota_and_idf1_only(scene: Scene, data: st.DataObject) -> None:
    truth = truth_of(scene)
    records = perfect_events(truth)
    tracks = perfect_tracks(truth)
    # The first well of the first position holds tracks 1 and 2 (evaluation_scenes).
    frames = int(tracks.t.max()) + 1
    from_t = data.draw(st.integers(1, frames - 1), label="from_t")
    swapped_tracks, swapped_records = swap_identities(
        tracks, records, position="0", a=1, b=2, from_t=from_t
    )
    before = scored(truth, records, tracks)
    after = scored(truth, swapped_records, swapped_tracks)

    assert before.tracking is not None
    assert after.tracking is not None
    assert after.tracking.overall.num_switches == 2
    assert after.tracking.overall.mota < before.tracking.overall.mota
    assert after.tracking.overall.idf1 < before.tracking.overall.idf1
    swapped_well = next(
        i
        for i, w in enumerate(before.tracking.per_well)
        if (w.position, w.well) == ("0", "r000c000")
    )
    cells = before.tracking.per_well[swapped_well].cells
    bin_index = next(i for i, b in enumerate(before.tracking.by_cells) if b.cells == cells)
    allowed = (
        "tracking.overall.",
        f"tracking.per_well.{swapped_well}.scores.",
        f"tracking.by_cells.{bin_index}.scores.",
    )
    changes = changed(before.to_dict(), after.to_dict())
    # A death reported after the swap names the swapped id: a record, not a metric.
    renamed = {
        c for c in changes if c.startswith("deaths.matches.") and c.endswith(".predicted_track")
    }
    assert _only(changes - renamed, allowed) == set()


@SETTINGS
@given(scenes(), st.data())
def test_missed_death_lowers_death_recall_only(scene: Scene, data: st.DataObject) -> None:
    truth = truth_of(scene)
    records = perfect_events(truth)
    tracks = perfect_tracks(truth)
    deaths = [i for i, e in enumerate(records) if e["kind"] == "death"]
    dropped = data.draw(st.sampled_from(deaths), label="dropped death")
    before = scored(truth, records, tracks)
    after = scored(truth, without(records, dropped), tracks)

    assert before.deaths is not None
    assert after.deaths is not None
    assert after.deaths.recall < before.deaths.recall
    assert after.deaths.missed == before.deaths.missed + 1
    assert after.deaths.false == before.deaths.false == 0
    assert after.deaths.onsets_on_time == before.deaths.onsets_on_time - 1
    assert after.deaths.onsets_on_time_of_truth < before.deaths.onsets_on_time_of_truth
    bins_moved = [
        (b.truth - a.truth, b.detected - a.detected, b.on_time - a.on_time)
        for b, a in zip(before.deaths.by_frames_seen, after.deaths.by_frames_seen, strict=True)
        if a != b
    ]
    assert bins_moved == [(0, 1, 1)]  # the dropped death's bin lost one detection
    if after.deaths.detected:
        assert after.deaths.precision == before.deaths.precision == 1.0
        assert after.deaths.onset_error.mean_abs == before.deaths.onset_error.mean_abs == 0.0
        assert after.deaths.pathway_accuracy == before.deaths.pathway_accuracy == 1.0
        assert after.deaths.onsets_on_time_of_detected == 1.0
    else:  # the only death was dropped: nothing predicted, so no precision and no errors
        assert math.isnan(after.deaths.precision)
        assert after.deaths.onset_error.n == 0
    # The remaining detections are the same detections, unchanged.
    assert set(after.deaths.matches) < set(before.deaths.matches)
    # Nothing outside the death counts moves. Lead-time summaries are over the detected
    # deaths, so they may move with one fewer of them; the per-match values do not.
    changes = changed(before.to_dict(), after.to_dict()) - {"event_counts.death"}
    assert _only(changes, ("deaths.",)) == set()
    death_fields = {c.split(".")[1] for c in changes}
    assert death_fields <= {
        "predicted",
        "detected",
        "missed",
        "recall",
        "f1",
        "lead_time",
        "lead_time_by_pathway",
        "pathway_scored",
        "pathway_confusion",
        "precision",  # only from 1.0 to undefined, when the one prediction is dropped
        "pathway_accuracy",  # likewise
        "matches",
        "missed_deaths",
        "onset_error",  # its n (the number of matches), not its values: checked above
        "onsets_on_time",
        "onsets_on_time_of_truth",
        "onsets_on_time_of_detected",  # only from 1.0 to undefined, like precision
        "by_frames_seen",  # checked above
    }


@SETTINGS
@given(scenes(), st.data())
def test_shifted_onset_changes_onset_error_only(scene: Scene, data: st.DataObject) -> None:
    truth = truth_of(scene)
    records = perfect_events(truth)
    tracks = perfect_tracks(truth)
    deaths = [i for i, e in enumerate(records) if e["kind"] == "death"]
    shifted = data.draw(st.sampled_from(deaths), label="shifted death")
    delta = data.draw(st.integers(-4, 4).filter(bool), label="delta")
    onset = records[shifted]["onset_t"] + delta
    before = scored(truth, records, tracks)
    after = scored(truth, with_fields(records, shifted, onset_t=onset), tracks)

    assert after.deaths is not None
    assert after.deaths.onset_error.mean_abs == abs(delta) / after.deaths.detected
    assert after.deaths.onset_error.mean == delta / after.deaths.detected
    late = int(abs(delta) > ONSET_TOLERANCE_FRAMES)
    assert after.deaths.onsets_on_time == before.deaths.onsets_on_time - late
    on_time_moved = [
        b.on_time - a.on_time
        for b, a in zip(before.deaths.by_frames_seen, after.deaths.by_frames_seen, strict=True)
        if a != b
    ]
    assert on_time_moved == [1] * late
    changes = changed(before.to_dict(), after.to_dict())
    allowed = {"deaths.onset_error.", "deaths.onsets_on_time", "deaths.by_frames_seen."}
    assert _only(changes, (*allowed, "deaths.matches.")) == set()
    assert {c.rsplit(".", 1)[1] for c in changes if c.startswith("deaths.matches.")} <= {
        "predicted_onset_t",
        "onset_error",
    }


@SETTINGS
@given(scenes(), st.data())
def test_wrong_class_lowers_that_class_only(scene: Scene, data: st.DataObject) -> None:
    truth = truth_of(scene)
    records = perfect_events(truth)
    tracks = perfect_tracks(truth)
    cells = [
        (i, r, c)
        for i, e in enumerate(records)
        if e["kind"] == "patch_states"
        for r, row in enumerate(e["states"])
        for c, state in enumerate(row)
        if state >= 0
    ]
    index, row, col = data.draw(st.sampled_from(cells), label="patch")
    true_class = records[index]["states"][row][col]
    wrong = data.draw(
        st.sampled_from([k for k in range(len(PATCH_STATES)) if k != true_class]), label="wrong"
    )
    before = scored(truth, records, tracks)
    after = scored(truth, with_patch_class(records, index, row, col, wrong), tracks)

    assert before.patches is not None
    assert after.patches is not None
    assert after.patches.accuracy < before.patches.accuracy
    assert after.patches.balanced_accuracy < before.patches.balanced_accuracy
    true_scores = after.patches.per_class[true_class]
    wrong_scores = after.patches.per_class[wrong]
    assert true_scores.recall < 1.0
    assert true_scores.precision == 1.0 or (true_scores.predicted == 0)  # else undefined
    assert wrong_scores.precision < 1.0
    assert not math.isnan(wrong_scores.f1)
    assert wrong_scores.f1 < 1.0
    changes = changed(before.to_dict(), after.to_dict())
    allowed = (
        "patches.accuracy",
        "patches.balanced_accuracy",
        "patches.macro_f1",
        "patches.macro_auroc",
        "patches.confusion.",
        f"patches.per_class.{true_class}.",
        f"patches.per_class.{wrong}.",
        "patches.timeline.",
    )
    assert _only(changes, allowed) == set()
    # The frame's truth counts and the empty bookkeeping are untouched.
    assert not any(".truth." in c for c in changes if c.startswith("patches.timeline."))
    assert EMPTY_PATCH not in {PATCH_STATES[true_class], PATCH_STATES[wrong]}
