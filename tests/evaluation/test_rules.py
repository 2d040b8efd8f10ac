"""The scoring rules the docs promise, each on a hand-made case small enough to check by eye."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from evaluation_scenes import make_scene, truth_of

from livecell.evaluation.cell_types import score_cell_types
from livecell.evaluation.contacts import (
    Interval,
    iou,
    predicted_intervals,
    score_contacts,
    truth_intervals,
)
from livecell.evaluation.deaths import FramesSeenBin, score_deaths
from livecell.evaluation.errors import InputError
from livecell.evaluation.patches import align_patches, score_patches
from livecell.evaluation.tables import (
    PATCH_COLUMNS,
    TRACK_COLUMNS,
    ContactEvent,
    DeathEvent,
    PatchStatesEvent,
    TrackTable,
    TruthContact,
    TruthDeath,
    patch_table,
    track_table,
)
from livecell.evaluation.tracking import SameIds, TrackMap, combine, score_tracking
from livecell.simulation.scene import PATCH_STATES

LC, LT, AP, NP, NC = PATCH_STATES


def tracks(*rows: tuple[Any, ...]) -> TrackTable:
    """Rows of (position, t, track, well, x, y[, cell_type]) as a ``TrackTable``."""
    full = [
        dict(
            zip(
                TRACK_COLUMNS,
                (*r[:6], 100, r[6] if len(r) > 6 else "target", "live"),
                strict=True,
            )
        )
        for r in rows
    ]
    return track_table([{k: str(v) for k, v in r.items()} for r in full], TRACK_COLUMNS, source="t")


def patches(*rows: tuple[Any, ...]) -> Any:
    return patch_table(
        [dict(zip(PATCH_COLUMNS, map(str, r), strict=True)) for r in rows],
        PATCH_COLUMNS,
        source="p",
    )


def patch_event(
    t: int,
    states: list[list[int]],
    *,
    classes: tuple[str, ...] = PATCH_STATES,
    patch_size: int = 160,
    probabilities: list[Any] | None = None,
) -> PatchStatesEvent:
    return PatchStatesEvent(
        position="0",
        t=t,
        classes=classes,
        patch_size=patch_size,
        states=np.array(states, dtype=np.int64),
        probabilities=None if probabilities is None else np.array(probabilities, dtype=float),
    )


# --- patch states -------------------------------------------------------------------------


def test_empty_and_skipped_patches() -> None:
    truth = patches(
        ("0", 0, 0, 0, LC),  # skipped by the model: a cell patch missed
        ("0", 0, 0, 1, "empty"),  # given a state: a false apoptosis call
        ("0", 0, 0, 2, "empty"),  # skipped: right, and not in accuracy
        ("0", 0, 0, 3, AP),  # right
    )
    report = score_patches(align_patches(truth, [patch_event(0, [[-1, 2, -1, 2]])]))
    assert report.cell_patches == 2
    assert report.accuracy == 0.5  # the skipped cell patch counts as wrong
    assert report.cells_skipped == 1
    assert (report.empty_patches, report.empty_skipped, report.empty_called) == (2, 1, 1)
    by_name = {c.name: c for c in report.per_class}
    assert by_name[AP].precision == 0.5  # the call on the empty patch is a false positive
    assert by_name[AP].recall == 1.0
    assert by_name[LC].recall == 0.0
    assert math.isnan(by_name[LC].precision)
    assert report.balanced_accuracy == 0.5  # mean recall over live_control and apoptosis
    assert report.labels[-1] == "empty"


def test_patch_metrics_agree_with_sklearn() -> None:
    from sklearn.metrics import balanced_accuracy_score, precision_recall_fscore_support

    rng = np.random.default_rng(3)
    truth_idx = rng.integers(0, 5, size=(6, 8))
    truth_idx[0, :5] = range(5)  # every class present
    predicted = np.where(rng.random((6, 8)) < 0.7, truth_idx, rng.integers(0, 5, size=(6, 8)))
    truth = patches(
        *[("0", 0, r, c, PATCH_STATES[truth_idx[r, c]]) for r in range(6) for c in range(8)]
    )
    report = score_patches(align_patches(truth, [patch_event(0, predicted.tolist())]))
    y_true = [PATCH_STATES[i] for i in truth_idx.ravel()]
    y_pred = [PATCH_STATES[i] for i in predicted.ravel()]
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(PATCH_STATES), zero_division=0
    )
    for k, c in enumerate(report.per_class):
        assert c.precision == pytest.approx(precision[k])
        assert c.recall == pytest.approx(recall[k])
        assert c.f1 == pytest.approx(f1[k])
        assert c.support == support[k]
    assert report.balanced_accuracy == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert report.macro_f1 == pytest.approx(float(np.mean(f1)))


def test_probabilities_give_auroc_per_class_and_macro() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    truth_idx = np.array([[0, 1, 2, 3, 4, 0, 1, 2, 3, 4]])
    scores = rng.random((1, 10, 5))
    scores[0, np.arange(10), truth_idx[0]] += 0.5  # informative, not perfect
    predicted = scores.argmax(axis=2)
    truth = patches(*[("0", 0, 0, c, PATCH_STATES[truth_idx[0, c]]) for c in range(10)])
    without = score_patches(align_patches(truth, [patch_event(0, predicted.tolist())]))
    assert without.macro_auroc is None
    assert all(c.auroc is None for c in without.per_class)
    report = score_patches(
        align_patches(truth, [patch_event(0, predicted.tolist(), probabilities=scores.tolist())])
    )
    expected = [roc_auc_score(truth_idx[0] == k, scores[0, :, k]) for k in range(5)]
    assert [c.auroc for c in report.per_class] == pytest.approx(expected)
    assert report.macro_auroc == pytest.approx(float(np.mean(expected)))
    assert report.auroc_patches == 10


def test_probabilities_follow_the_event_class_order() -> None:
    reordered = tuple(reversed(PATCH_STATES))
    truth = patches(("0", 0, 0, 0, LC), ("0", 0, 0, 1, NC))
    # LC is index 4 in the reversed order; NC index 0.
    event = patch_event(
        0,
        [[4, 0]],
        classes=reordered,
        probabilities=[[[0.1, 0, 0, 0, 0.9], [0.8, 0, 0, 0, 0.2]]],
    )
    report = score_patches(align_patches(truth, [event]))
    assert report.accuracy == 1.0
    by_name = {c.name: c for c in report.per_class}
    assert by_name[LC].auroc == 1.0
    assert by_name[NC].auroc == 1.0


@pytest.mark.parametrize(
    ("patch_size", "grid", "index"),
    [(80, (4, 4), (1, 3)), (320, (1, 1), (0, 0)), (160, (2, 2), (0, 1))],
)
def test_other_patch_sizes_score_the_patch_covering_the_centre(
    patch_size: int, grid: tuple[int, int], index: tuple[int, int]
) -> None:
    # Ground-truth patch (0, 1) of 160 px has its centre at x=240, y=80.
    truth = patches(("0", 0, 0, 1, NP))
    states = np.full(grid, 0, dtype=np.int64)
    states[index] = PATCH_STATES.index(NP)
    report = score_patches(
        align_patches(truth, [patch_event(0, states.tolist(), patch_size=patch_size)])
    )
    assert report.accuracy == 1.0


def test_frames_without_an_event_are_counted_not_scored() -> None:
    truth = patches(("0", 0, 0, 0, LC), ("0", 1, 0, 0, AP), ("0", 2, 0, 0, AP))
    report = score_patches(align_patches(truth, [patch_event(1, [[2]])]))
    assert (report.frames_scored, report.frames_without_event) == (1, 2)
    assert report.cell_patches == 1
    assert report.accuracy == 1.0


def test_a_class_the_truth_does_not_know_gets_its_own_column() -> None:
    truth = patches(("0", 0, 0, 0, AP), ("0", 0, 0, 1, LC))
    report = score_patches(
        align_patches(truth, [patch_event(0, [[1, 0]], classes=("live", "dead"))])
    )
    assert report.labels == (*PATCH_STATES, "dead", "live", "empty")
    assert report.accuracy == 0.0


# --- tracking -----------------------------------------------------------------------------


def test_group_totals_equal_motmetrics_overall() -> None:
    import motmetrics as mm

    rng = np.random.default_rng(5)
    scene = make_scene(rng, positions=2, frames=12, wells=3, max_cells=4)
    truth = truth_of(scene).tracks
    assert truth is not None
    keep = rng.random(len(truth)) > 0.1  # misses
    noisy = truth.take(np.flatnonzero(keep))
    ids = noisy.track.copy()
    ids[rng.random(len(ids)) < 0.05] += 100  # fragments
    predicted = TrackTable(
        **{
            **{name: getattr(noisy, name) for name in TRACK_COLUMNS},
            "track": ids,
            "x": noisy.x + rng.normal(0, 6, len(noisy)),
        }
    )
    report, _ = score_tracking(truth, predicted)
    assert report.overall.num_misses > 0
    assert report.overall.num_matches > 0

    accumulators, names = [], []
    for w in report.per_well:
        acc = mm.MOTAccumulator(auto_id=False)
        for t in sorted(set(truth.t.tolist())):
            ti = np.flatnonzero(
                (truth.position == w.position) & (truth.well == w.well) & (truth.t == t)
            )
            pi = np.flatnonzero(
                (predicted.position == w.position) & (predicted.well == w.well) & (predicted.t == t)
            )
            d = mm.distances.norm2squared_matrix(
                np.column_stack([truth.x[ti], truth.y[ti]]),
                np.column_stack([predicted.x[pi], predicted.y[pi]]),
                max_d2=15.0**2,
            )
            acc.update(truth.track[ti].tolist(), predicted.track[pi].tolist(), d, frameid=t)
        accumulators.append(acc)
        names.append(f"{w.position}/{w.well}")
    summary = mm.metrics.create().compute_many(
        accumulators, metrics=["mota", "idf1", "num_switches"], names=names, generate_overall=True
    )
    assert report.overall.mota == pytest.approx(summary.loc["OVERALL", "mota"])
    assert report.overall.idf1 == pytest.approx(summary.loc["OVERALL", "idf1"])
    assert report.overall.num_switches == summary.loc["OVERALL", "num_switches"]
    for w, name in zip(report.per_well, names, strict=True):
        assert w.scores.mota == pytest.approx(summary.loc[name, "mota"])
        assert w.scores.idf1 == pytest.approx(summary.loc[name, "idf1"])
    assert combine([b.scores for b in report.by_cells]) == report.overall


def test_match_distance_and_wells() -> None:
    truth = tracks(("0", 0, 1, "r000c000", 100, 100), ("0", 1, 1, "r000c000", 100, 100))
    near = tracks(("0", 0, 7, "r000c000", 110, 100), ("0", 1, 7, "r000c000", 110, 100))
    report, track_map = score_tracking(truth, near, max_distance_px=15)
    assert report.overall.mota == 1.0
    assert report.overall.mean_distance_px == pytest.approx(10.0)
    assert track_map.truth_track("0", 7, 0) == 1
    report, _ = score_tracking(truth, near, max_distance_px=5)
    assert (report.overall.num_misses, report.overall.num_false_positives) == (2, 2)
    # The right place in another well: a miss in one well and a false positive in the other.
    elsewhere = tracks(("0", 0, 7, "r000c001", 100, 100), ("0", 1, 7, "r000c001", 100, 100))
    report, _ = score_tracking(truth, elsewhere)
    assert (report.overall.num_misses, report.overall.num_false_positives) == (2, 2)
    assert {(w.well, w.cells) for w in report.per_well} == {("r000c000", 1), ("r000c001", 0)}
    assert math.isnan(report.per_well[1].scores.mota)  # no truth in that well


def test_match_distance_is_over_every_matched_pair_switches_included() -> None:
    truth = tracks(*(("0", t, 1, "r000c000", 100, 100) for t in range(4)))
    # 0 px away for two frames, then another id 5 px away: a switch at t=2, a match at t=3
    switched = tracks(
        ("0", 0, 7, "r000c000", 100, 100),
        ("0", 1, 7, "r000c000", 100, 100),
        ("0", 2, 8, "r000c000", 105, 100),
        ("0", 3, 8, "r000c000", 105, 100),
    )
    report, _ = score_tracking(truth, switched, max_distance_px=15)
    assert report.overall.num_switches == 1
    assert report.overall.mean_distance_px == pytest.approx(10 / 4)
    assert combine([report.overall, report.overall]).mean_distance_px == pytest.approx(10 / 4)


def test_frames_the_prediction_lacks_are_misses() -> None:
    truth = tracks(*[("0", t, 1, "w", 50, 50) for t in range(4)])
    predicted = tracks(*[("0", t, 1, "w", 50, 50) for t in range(2)])
    report, _ = score_tracking(truth, predicted)
    assert report.overall.num_misses == 2
    assert report.overall.mota == 0.5


def test_cells_per_well_is_the_loading_at_the_first_frame() -> None:
    truth = tracks(
        ("0", 0, 1, "a", 10, 10),
        ("0", 1, 1, "a", 10, 10),
        ("0", 1, 2, "a", 200, 10),  # born at t=1 (mitosis): the well still counts as 1
        ("0", 0, 3, "b", 10, 10),
        ("0", 0, 4, "b", 200, 10),
    )
    report, _ = score_tracking(truth, truth)
    assert {(w.well, w.cells) for w in report.per_well} == {("a", 1), ("b", 2)}
    assert [b.cells for b in report.by_cells] == [1, 2]


def test_duplicate_rows_are_an_input_error() -> None:
    twice = tracks(("0", 0, 1, "a", 10, 10), ("0", 0, 1, "a", 20, 10))
    with pytest.raises(InputError, match="track 1 appears twice"):
        score_tracking(twice, twice)


def test_track_map_answers_for_the_nearest_matched_frame() -> None:
    m = TrackMap({("0", 5): ((2, 3, 8), (1, 1, 9))})
    assert m.truth_track("0", 5, 3) == 1
    assert m.truth_track("0", 5, 0) == 1
    assert m.truth_track("0", 5, 5) == 1  # 2 frames from 3, 3 from 8
    assert m.truth_track("0", 5, 6) == 9
    assert m.truth_track("0", 5, 20) == 9
    assert m.truth_track("0", 6, 3) is None
    assert m.truth_track("1", 5, 3) is None


# --- deaths -------------------------------------------------------------------------------


def _death(track: int, onset: int, marker: int, pathway: str = "apoptosis", well: str = "a"):
    return TruthDeath("0", track, well, pathway, onset, marker)


def _call(t: int, onset: int, track: int | None, *, pathway: str = "apoptosis", **kw: Any):
    return DeathEvent(
        "0",
        t,
        pathway,
        onset,
        0.9,
        well=kw.get("well", "a"),
        track=track,
        **{k: v for k, v in kw.items() if k != "well"},
    )


def test_deaths_with_track_matches() -> None:
    truth_tracks = tracks(*[("0", t, k, "a", 60 * k, 50) for t in range(10) for k in (1, 2, 3)])
    predicted = TrackTable(
        **{**{n: getattr(truth_tracks, n) for n in TRACK_COLUMNS}, "track": truth_tracks.track + 10}
    )
    _, track_map = score_tracking(truth_tracks, predicted)
    truth = [_death(1, 3, 6), _death(2, 5, 5, "necrosis")]
    calls = [
        _call(4, 2, 11),  # cell 1: onset 1 frame early, reported 2 before the marker
        _call(6, 6, 12, pathway="death"),  # cell 2, pathway unspecified, after the marker
        _call(7, 7, 13),  # cell 3 never died: false
    ]
    report = score_deaths(truth, calls, resolver=track_map, truth_tracks=truth_tracks)
    assert report.matching == "track matches"
    assert (report.detected, report.missed, report.false) == (2, 0, 1)
    assert report.precision == pytest.approx(2 / 3)
    # A tracks file none of whose tracks matched: every event falls back, and says so.
    fallback = score_deaths(truth, calls, resolver=TrackMap({}), truth_tracks=truth_tracks)
    assert fallback.matching == "well and onset"
    assert [m.onset_error for m in report.matches] == [-1, 1]
    assert [m.lead_time for m in report.matches] == [2, -1]
    assert report.onset_error.mean == 0.0
    assert report.onset_error.mean_abs == 1.0
    assert report.onsets_on_time == 2
    assert report.onsets_on_time_of_detected == 1.0
    assert report.onsets_on_time_of_truth == 1.0
    assert (report.pathway_scored, report.pathway_unspecified, report.pathway_accuracy) == (
        1,
        1,
        1.0,
    )
    assert report.false_deaths[0].track == 13


def test_deaths_by_frames_seen_count_from_onset_to_the_last_frame() -> None:
    # frames 0..29: a death at onset 26 leaves 4 frames (26-29), at 22 leaves 8, at 13
    # leaves 17
    truth_tracks = tracks(*[("0", t, k, "a", 60 * k, 50) for t in range(30) for k in (1, 2, 3, 4)])
    _, same = score_tracking(truth_tracks, truth_tracks)
    truth = [_death(1, 26, 29), _death(2, 22, 25), _death(3, 13, 16), _death(4, 21, 24)]
    calls = [
        _call(28, 22, 2),  # on time
        _call(20, 13, 3),  # on time
        _call(29, 25, 4),  # 4 frames late
    ]
    report = score_deaths(truth, calls, resolver=same, truth_tracks=truth_tracks)
    assert report.by_frames_seen == (
        FramesSeenBin(1, 4, truth=1, detected=0, on_time=0),
        FramesSeenBin(5, 8, truth=1, detected=1, on_time=1),
        FramesSeenBin(9, 16, truth=1, detected=1, on_time=0),
        FramesSeenBin(17, None, truth=1, detected=1, on_time=1),
    )
    assert sum(b.on_time for b in report.by_frames_seen) == report.onsets_on_time
    assert score_deaths(truth, calls, resolver=None, truth_tracks=None).by_frames_seen == ()


def test_deaths_without_tracks_match_by_well_and_onset() -> None:
    truth = [_death(1, 10, 12), _death(2, 10, 14, "necrosis")]
    calls = [
        _call(10, 10, 2, pathway="necrosis"),  # same onset as both: ties go to the same id
        _call(30, 30, 1),  # 20 frames off: within the default gap
        _call(12, 12, 5, well="b"),  # another well: false
    ]
    report = score_deaths(truth, calls, resolver=None, truth_tracks=None)
    assert report.matching == "well and onset"
    assert (report.detected, report.false) == (2, 1)
    assert report.pathway_accuracy == 1.0
    assert report.onsets_on_time == 1  # the call 20 frames off is detected, not on time
    assert report.onsets_on_time_of_detected == 0.5
    assert report.onsets_on_time_of_truth == 0.5
    narrow = score_deaths(truth, calls, resolver=None, truth_tracks=None, max_onset_gap=5)
    assert (narrow.detected, narrow.missed, narrow.false) == (1, 1, 2)
    assert (narrow.onsets_on_time_of_detected, narrow.onsets_on_time_of_truth) == (1.0, 0.5)


def test_patch_deaths_match_the_cell_in_the_patch() -> None:
    # Holotomography: no wells; cell 1 sits in patch (0, 1), cell 2 in patch (1, 0).
    truth_tracks = tracks(
        *[("0", t, 1, "", 200, 50) for t in range(5)], *[("0", t, 2, "", 50, 200) for t in range(5)]
    )
    truth = [_death(1, 2, 4, "necroptosis", well=""), _death(2, 3, 4, well="")]
    calls = [
        DeathEvent("0", 2, "necroptosis", 2, 0.8, patch=(0, 1)),
        DeathEvent("0", 3, "apoptosis", 3, 0.8, patch=(1, 1)),  # nobody there
    ]
    report = score_deaths(truth, calls, resolver=None, truth_tracks=truth_tracks)
    assert (report.detected, report.missed, report.false) == (1, 1, 1)
    assert report.matches[0].truth_track == 1
    assert report.lead_time_by_pathway[0].pathway == "necroptosis"
    assert report.lead_time_by_pathway[0].lead_time.mean == 2.0
    # With 320 px patches both cells share patch (0, 0).
    calls = [DeathEvent("0", 3, "apoptosis", 3, 0.8, patch=(0, 0))]
    report = score_deaths(
        truth, calls, resolver=None, truth_tracks=truth_tracks, patch_sizes={"0": 320}
    )
    assert report.matches[0].truth_track == 2


def test_a_cell_dying_across_patches_is_one_death_and_its_other_patches_are_duplicates() -> None:
    # A cell of radius 60 px at x=150 reaches from patch (0, 0) into patch (0, 1).
    rows = [
        dict(
            zip(
                TRACK_COLUMNS,
                ("0", t, 1, "", 150, 80, round(np.pi * 60**2), "", "live"),
                strict=True,
            )
        )
        for t in range(5)
    ]
    truth_tracks = track_table(
        [{k: str(v) for k, v in r.items()} for r in rows], TRACK_COLUMNS, source="t"
    )
    truth = [_death(1, 2, 4, "necroptosis", well="")]
    calls = [
        DeathEvent("0", 3, "necroptosis", 2, 0.8, patch=(0, 0)),
        DeathEvent("0", 3, "necroptosis", 3, 0.8, patch=(0, 1)),
        DeathEvent("0", 3, "necroptosis", 2, 0.8, patch=(0, 2)),  # beyond its reach: false
    ]
    report = score_deaths(truth, calls, resolver=None, truth_tracks=truth_tracks)
    assert (report.detected, report.duplicates, report.false) == (1, 1, 1)
    assert report.matches[0].predicted_patch == (0, 0)  # the better onset
    assert [e.patch for e in report.false_deaths] == [(0, 2)]
    assert report.precision == 0.5  # 1 of the 2 that are not duplicates


# --- contacts -----------------------------------------------------------------------------


def test_contact_intervals_from_events() -> None:
    events = [
        ContactEvent("0", 2, True, "a", (1, 2)),
        ContactEvent("0", 5, False, "a", (2, 1)),  # order of the pair does not matter
        ContactEvent("0", 7, True, "a", (1, 2)),  # never ended: runs to the last frame
        ContactEvent("0", 4, False, "a", (3, 4)),  # never started: from the first frame
    ]
    intervals = predicted_intervals(
        events, resolver=SameIds(None), first_t={"0": 0}, last_t={"0": 9}
    )
    assert {(i.tracks, i.start_t, i.end_t) for i in intervals} == {
        ((1, 2), 2, 4),
        ((1, 2), 7, 9),
        ((3, 4), 0, 3),
    }


def test_an_end_and_a_start_of_a_pair_in_one_frame_close_one_contact_and_open_the_next() -> None:
    events = [
        ContactEvent("0", 5, True, "a", (1, 2)),
        ContactEvent("0", 5, False, "a", (1, 2)),  # its start came before the first frame
    ]
    intervals = predicted_intervals(
        events, resolver=SameIds(None), first_t={"0": 0}, last_t={"0": 9}
    )
    # [0, 4] and [5, 9], then merged (less than a frame apart); starts first gave [5, 5]
    assert [(i.start_t, i.end_t) for i in intervals] == [(0, 9)]


def test_contact_paired_by_predicted_ids_and_split_where_its_cells_change() -> None:
    # predicted track 7 is true track 1 until frame 5, then swaps to true track 3
    m = TrackMap(
        {
            ("0", 7): (tuple(range(10)), (1, 1, 1, 1, 1, 3, 3, 3, 3, 3)),
            ("0", 8): (tuple(range(10)), (2,) * 10),
        }
    )
    events = [
        ContactEvent("0", 2, True, "a", (7, 8)),
        ContactEvent("0", 6, False, "a", (8, 7)),  # frames 2..4 as (1, 2), 5 as (2, 3)
        ContactEvent("0", 6, True, "a", (7, 8)),  # frames 6..9: all (2, 3)
    ]
    intervals = predicted_intervals(events, resolver=m, first_t={"0": 0}, last_t={"0": 9})
    assert [(i.tracks, i.start_t, i.end_t) for i in intervals] == [
        ((1, 2), 2, 4),
        ((2, 3), 5, 9),
    ]
    never_matched = [
        ContactEvent("0", 2, True, "a", (7, 99)),
        ContactEvent("0", 4, False, "a", (7, 99)),
    ]
    untranslated = predicted_intervals(never_matched, resolver=m, first_t={"0": 0}, last_t={"0": 9})
    assert untranslated[0].tracks == _pair_of(("predicted", 99), 1)


def test_an_identity_switch_inside_a_contact_does_not_split_it() -> None:
    # the daemon's track 7 becomes track 9 at frame 5 (same true cell 1): one true contact
    m = TrackMap(
        {
            ("0", 7): ((2, 3, 4), (1, 1, 1)),
            ("0", 9): ((5, 6, 7), (1, 1, 1)),
            ("0", 8): (tuple(range(10)), (2,) * 10),
        }
    )
    events = [
        ContactEvent("0", 2, True, "a", (7, 8)),
        ContactEvent("0", 5, False, "a", (7, 8)),
        ContactEvent("0", 5, True, "a", (9, 8)),
        ContactEvent("0", 8, False, "a", (9, 8)),
    ]
    intervals = predicted_intervals(events, resolver=m, first_t={"0": 0}, last_t={"0": 9})
    assert [(i.tracks, i.start_t, i.end_t) for i in intervals] == [((1, 2), 2, 7)]
    apart = predicted_intervals(
        events, resolver=m, first_t={"0": 0}, last_t={"0": 9}, gap_frames=-1
    )
    assert len(apart) == 2


def _pair_of(a: Any, b: Any) -> tuple[Any, Any]:
    return (a, b) if repr(a) <= repr(b) else (b, a)


def test_contact_iou_rule() -> None:
    truth = truth_intervals([TruthContact("0", "a", 2, 1, 0, 9)])
    assert truth[0].tracks == (1, 2)
    short = [Interval("0", "a", (1, 2), 0, 3)]
    assert iou(truth[0], short[0]) == pytest.approx(0.4)
    report = score_contacts(truth, short)
    assert (report.matched, report.precision, report.recall) == (0, 0.0, 0.0)
    report = score_contacts(truth, short, min_iou=0.4)
    assert report.matched == 1
    assert report.end_error.mean == -6.0
    other_pair = [Interval("0", "a", (1, 3), 0, 9)]
    assert score_contacts(truth, other_pair).matched == 0
    other_well = [Interval("0", "b", (1, 2), 0, 9)]
    assert score_contacts(truth, other_well).matched == 0


def test_true_contacts_one_frame_apart_are_one_contact() -> None:
    rows = [
        TruthContact("0", "a", 2, 1, 0, 3),
        TruthContact("0", "a", 1, 2, 5, 6),  # one frame (4) apart: the same contact
        TruthContact("0", "a", 1, 2, 9, 9),  # two frames (7, 8) apart: a new one
        TruthContact("0", "b", 1, 2, 5, 6),  # another well: never merged
    ]
    merged = {(i.well, i.start_t, i.end_t) for i in truth_intervals(rows)}
    assert merged == {("a", 0, 6), ("a", 9, 9), ("b", 5, 6)}
    as_written = {(i.well, i.start_t, i.end_t) for i in truth_intervals(rows, gap_frames=0)}
    assert as_written == {("a", 0, 3), ("a", 5, 6), ("a", 9, 9), ("b", 5, 6)}
    assert len(truth_intervals(rows, gap_frames=2)) == 2


def test_contacts_one_to_one() -> None:
    truth = [Interval("0", "a", (1, 2), 0, 4), Interval("0", "a", (1, 2), 10, 14)]
    predicted = [Interval("0", "a", (1, 2), 0, 14)]  # one long interval covering both
    report = score_contacts(truth, predicted, min_iou=0.3)
    assert (report.matched, report.precision, report.recall) == (1, 1.0, 0.5)


# --- cell types ---------------------------------------------------------------------------


def test_cell_type_accuracy_per_type_and_coverage() -> None:
    from livecell.evaluation.tables import CellTypeEvent

    truth = tracks(
        ("0", 0, 1, "a", 10, 10, "effector"),
        ("0", 0, 2, "a", 90, 10, "target"),
        ("0", 0, 3, "a", 180, 10, "target"),
    )
    events = [
        CellTypeEvent("0", 0, "a", 1, "effector", 0.9),
        CellTypeEvent("0", 0, "a", 2, "effector", 0.6),  # wrong
        CellTypeEvent("0", 0, "a", 9, "target", 0.6),  # no such track
    ]
    report = score_cell_types(truth, events, resolver=SameIds.of(truth))
    assert (report.scored, report.unmatched_events) == (2, 1)
    per_type = {s.cell_type: s for s in report.per_type}
    assert per_type["effector"].accuracy == 1.0
    assert per_type["target"].accuracy == 0.0
    assert report.balanced_accuracy == 0.5
    assert report.coverage == pytest.approx(2 / 3)
