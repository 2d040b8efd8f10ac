"""Per-track decisions (one cell type, one monotone death, early necroptosis before death)
and the per-track state the models read."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from livecell.analysis.fates import CellTypeVote, DeathDecision, DeathWatch, _onset
from livecell.analysis.track_state import TrackState
from livecell.tracking.arrest import ArrestRule
from livecell.tracking.motion import SPEED_FLOOR_PX, motion_descriptors
from livecell.tracking.smoothing import FixedLagSmoother

DEATH_CLASSES = ("live", "apoptosis", "necroptosis", "necrosis")


def watch(
    onset_threshold: float | None = None,
    onset_context_frames: int | None = None,
    arrest: ArrestRule | None = None,
    apoptosis_hold_frames: int = 0,
    **overrides: float,
) -> DeathWatch:
    settings = {
        "threshold": 0.5,
        "confirm_frames": 2,
        "early_threshold": 0.35,
        "min_track_frames": 1,
    } | overrides
    return DeathWatch(
        DEATH_CLASSES,
        threshold=settings["threshold"],
        confirm_frames=int(settings["confirm_frames"]),
        early_threshold=settings["early_threshold"],
        min_track_frames=int(settings["min_track_frames"]),
        onset_threshold=onset_threshold,
        onset_context_frames=onset_context_frames,
        arrest=arrest,
        apoptosis_hold_frames=apoptosis_hold_frames,
    )


def feed(
    w: DeathWatch,
    dead_by_frame: list[float],
    pathway: int = 1,
    steps_px: dict[int, float] | None = None,
) -> list[tuple[int, DeathDecision]]:
    """Feed per-frame death probabilities through windows of 4 frames (and the track's
    steps so far); return decisions."""
    out = []
    for t in range(len(dead_by_frame)):
        ts = np.array([max(0, t - 3 + i) for i in range(4)])
        dead = np.array([dead_by_frame[i] for i in ts], dtype=np.float32)
        frame_probs = np.zeros((4, 4), dtype=np.float32)
        frame_probs[:, 0] = 1 - dead
        frame_probs[:, pathway] = dead
        window = frame_probs[-1]
        seen = None if steps_px is None else {k: v for k, v in steps_px.items() if k <= t}
        out += [(t, d) for d in w.update(ts, frame_probs, window, seen)]
    return out


def bare_track_state() -> TrackState:
    """A track's state with no models: motion and steps only."""
    return TrackState(
        position="Pos0",
        well="r000c000",
        track=1,
        smoother=FixedLagSmoother(lam=0.0, lag=0, window=24),
        window=24,
        cell_type=None,
        death=None,
    )


def test_one_high_frame_is_not_a_death() -> None:
    assert feed(watch(), [0.1, 0.1, 0.9, 0.1, 0.1, 0.1]) == []


def test_death_is_decided_once_with_its_onset() -> None:
    w = watch()
    decisions = feed(w, [0.1, 0.1, 0.2, 0.7, 0.8, 0.9, 0.95, 0.97])
    assert len(decisions) == 1
    t, death = decisions[0]
    assert t == 4  # two frames at or above 0.5: frames 3 and 4
    assert death.pathway == "apoptosis"
    assert death.onset_t == 3
    assert not death.early
    assert w.state_at(2) == "live"
    assert w.state_at(3) == "apoptosis"


def test_early_necroptosis_comes_before_the_death() -> None:
    decisions = feed(watch(), [0.1, 0.4, 0.42, 0.45, 0.6, 0.7, 0.8], pathway=2)
    kinds = [(t, d.early, d.pathway) for t, d in decisions]
    assert kinds == [(2, True, "necroptosis"), (5, False, "necroptosis")]


@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_death_probability_never_goes_down(dead: list[float]) -> None:
    w = watch(threshold=0.999)
    seen = []
    for t in range(len(dead)):
        frame = np.array([[1 - dead[t], dead[t], 0, 0]], dtype=np.float32)
        w.update(np.array([t]), frame, frame[0])
        seen.append(w.probability)
    assert all(b >= a for a, b in itertools.pairwise(seen))


def test_cell_type_waits_for_a_stable_confident_leader() -> None:
    vote = CellTypeVote(("effector", "target"), min_confidence=0.8, stable_frames=3)
    results = [
        vote.update(np.array(p, dtype=np.float32))
        for p in ([0.9, 0.1], [0.95, 0.05], [0.9, 0.1], [0.1, 0.9])
    ]
    assert results[:2] == [None, None]
    assert results[2] is not None
    assert results[2].cell_type == "effector"
    assert results[3] is None  # decided once
    assert vote.best == results[2]


def test_an_unsure_cell_type_is_never_decided() -> None:
    vote = CellTypeVote(("effector", "target"), min_confidence=0.8, stable_frames=2)
    for _ in range(10):
        assert vote.update(np.array([0.6, 0.4], dtype=np.float32)) is None
    best = vote.best
    assert best is not None
    assert best.cell_type == "effector"
    assert abs(best.confidence - 0.6) < 1e-6


def test_track_state_motion_equals_the_whole_track_computation() -> None:
    """What the models read online is what the training windows computed over a whole track."""
    rng = np.random.default_rng(3)
    positions = rng.normal(0, 20, (12, 2)).cumsum(axis=0) + 100
    areas = rng.uniform(300, 900, 12)
    eccentricities = rng.uniform(0, 0.9, 12)
    state = bare_track_state()
    crop = np.zeros((2, 4, 4), dtype=np.float32)
    for t, ((x, y), area, ecc) in enumerate(zip(positions, areas, eccentricities, strict=True)):
        state.add(t, x, y, area, ecc, crop, measured=True)
    _, _, motion = state.window_arrays()
    expected = motion_descriptors(positions[:, ::-1], areas, eccentricities)
    np.testing.assert_allclose(motion[-12:], expected, rtol=1e-5, atol=1e-5)


def test_no_death_is_called_on_a_young_track() -> None:
    young = feed(watch(min_track_frames=6), [0.9] * 8)
    assert [t for t, _ in young] == [5]  # the probability held from frame 2; age 6 at frame 5
    assert [t for t, _ in feed(watch(), [0.9] * 8)] == [1]


def feed_windows(
    w: DeathWatch, windows: list[list[float]], start: int = 0, pathway: int = 1
) -> list[tuple[int, DeathDecision]]:
    """Feed whole windows of per-frame death probabilities, the ``k``-th ending at frame
    ``start + k`` and padded at the front by repeating the track's first frame, as the
    daemon pads; return the decisions with the frame they were made at."""
    out = []
    for k, dead_list in enumerate(windows):
        end = start + k
        size = len(dead_list)
        ts = np.maximum(np.arange(end - size + 1, end + 1), start)
        dead = np.array(dead_list, dtype=np.float32)
        frame_probs = np.zeros((size, 4), dtype=np.float32)
        frame_probs[:, 0] = 1 - dead
        frame_probs[:, pathway] = dead
        out += [(end, d) for d in w.update(ts, frame_probs, frame_probs[-1])]
    return out


def test_a_lower_onset_threshold_places_the_onset_earlier_on_a_ramp() -> None:
    ramp = [0.05, 0.05, 0.1, 0.3, 0.6, 0.85, 0.9, 0.95, 0.97]
    called = feed(watch(threshold=0.8), ramp)
    lower = feed(watch(threshold=0.8, onset_threshold=0.5), ramp)
    assert [t for t, _ in called] == [t for t, _ in lower] == [6]  # the call does not move
    assert called[0][1].onset_t == 5
    assert lower[0][1].onset_t == 4


RULE = ArrestRule(before_frames=4, after_frames=2, window_frames=3, still_px=2.0, crawl_frames=3)


def test_the_onset_moves_to_where_the_cell_stopped_crawling() -> None:
    ramp = [0.05, 0.05, 0.1, 0.3, 0.6, 0.85, 0.9, 0.95, 0.97]
    stopped_at_3 = {1: 3.0, 2: 2.5, 3: 2.8, 4: 0.1, 5: 0.2, 6: 0.1, 7: 0.1, 8: 0.1}
    plain = feed(watch(threshold=0.8), ramp, steps_px=stopped_at_3)
    refined = feed(watch(threshold=0.8, arrest=RULE), ramp, steps_px=stopped_at_3)
    assert [t for t, _ in plain] == [t for t, _ in refined] == [6]  # the call does not move
    assert plain[0][1].onset_t == 5
    assert refined[0][1].onset_t == 3
    never_crawled = {t: 0.1 for t in range(1, 9)}
    assert feed(watch(threshold=0.8, arrest=RULE), ramp, steps_px=never_crawled)[0][1].onset_t == 5
    assert feed(watch(threshold=0.8, arrest=RULE), ramp)[0][1].onset_t == 5  # no steps given


def test_no_death_is_called_while_the_cell_still_crawls() -> None:
    """The model says dead from frame 4 on; the cell crawls until frame 9. The call waits
    until the last three steps' median is still (frame 11); the onset is where the cell
    stopped (8 or 9 read alike through medians of three: the nearer the model's wins)."""
    dead = [0.05] * 4 + [0.95] * 12
    crawls_to_9 = {t: 3.0 if t <= 9 else 0.1 for t in range(1, 16)}
    called = feed(watch(threshold=0.8, arrest=RULE), dead, steps_px=crawls_to_9)
    assert [t for t, _ in called] == [11]
    assert called[0][1].onset_t in (8, 9)
    keeps_crawling = {t: 3.0 for t in range(1, 16)}
    assert feed(watch(threshold=0.8, arrest=RULE), dead, steps_px=keeps_crawling) == []
    unchecked = ArrestRule(before_frames=4, window_frames=3, crawl_frames=0)
    assert [
        t for t, _ in feed(watch(threshold=0.8, arrest=unchecked), dead, steps_px=keeps_crawling)
    ] == [5]


RISE_AT_3 = [0.1, 0.1, 0.2, 0.7, 0.8, 0.9, 0.95, 0.97, 0.97, 0.98, 0.98, 0.99]


def feed_track(
    w: DeathWatch, dead_by_frame: list[float], pathway: int = 1
) -> list[tuple[int, int]]:
    """Feed a track's frames through windows of 8 (padded at the front, as the daemon
    pads); return (frame, onset) of the deaths called."""
    windows = [
        [dead_by_frame[max(0, t - 7 + i)] for i in range(8)] for t in range(len(dead_by_frame))
    ]
    return [(t, d.onset_t) for t, d in feed_windows(w, windows, pathway=pathway) if not d.early]


def test_an_apoptosis_is_called_once_its_onset_is_old_enough() -> None:
    """Called at frame 4 without the hold; with a 5-frame hold, at frame 8 (onset 3 + 5),
    with the same onset."""
    assert feed_track(watch(), RISE_AT_3) == [(4, 3)]
    assert feed_track(watch(apoptosis_hold_frames=5), RISE_AT_3) == [(8, 3)]


def test_a_cell_that_divides_within_the_hold_is_never_called_dead() -> None:
    """A rounding cell looks like early apoptosis, then divides: its track ends (no more
    updates) before the hold has passed, so no death is ever called."""
    rounding_then_division = RISE_AT_3[:8]  # the track's last frame is 7
    assert feed_track(watch(), rounding_then_division) == [(4, 3)]
    assert feed_track(watch(apoptosis_hold_frames=5), rounding_then_division) == []


def test_the_death_a_hold_waits_on_is_made_when_the_track_gets_no_more_frames() -> None:
    """The acquisition ends at frame 7, inside the hold: the death is made then, once, with
    the onset it had; a track whose hold had passed, or that never looked dead, has none."""
    ends_in_the_hold = watch(apoptosis_hold_frames=5)
    assert feed_track(ends_in_the_hold, RISE_AT_3[:8]) == []
    held = ends_in_the_hold.decide_held()
    assert held is not None
    assert (held.pathway, held.onset_t, held.early) == ("apoptosis", 3, False)
    assert ends_in_the_hold.decide_held() is None
    assert ends_in_the_hold.death == held
    called = watch(apoptosis_hold_frames=5)
    assert feed_track(called, RISE_AT_3) == [(8, 3)]
    assert called.decide_held() is None
    never_dead = watch(apoptosis_hold_frames=5)
    assert feed_track(never_dead, [0.1] * 12) == []
    assert never_dead.decide_held() is None


def test_a_track_born_dying_holds_no_death_for_the_end() -> None:
    w = DeathWatch(
        DEATH_CLASSES,
        threshold=0.5,
        confirm_frames=2,
        early_threshold=0.35,
        apoptosis_hold_frames=5,
        born_t=10,
    )
    windows = [[0.95] * 8 for _ in range(4)]
    assert [d for _, d in feed_windows(w, windows, start=10) if not d.early] == []
    assert w.decide_held() is None


def test_swelling_deaths_are_not_held() -> None:
    for necroptosis_or_necrosis in (2, 3):
        held = watch(apoptosis_hold_frames=5)
        assert feed_track(held, RISE_AT_3, necroptosis_or_necrosis) == [(4, 3)]


def born_at_10(dead_from_birth: list[float], born_t: int | None) -> list[tuple[int, int]]:
    """A track that first appears at frame 10, fed windows of 8 (front-padded)."""
    w = DeathWatch(
        DEATH_CLASSES, threshold=0.5, confirm_frames=2, early_threshold=0.35, born_t=born_t
    )
    n = len(dead_from_birth)
    windows = [[dead_from_birth[max(0, k - 7 + i)] for i in range(8)] for k in range(n)]
    return [(t, d.onset_t) for t, d in feed_windows(w, windows, start=10) if not d.early]


def test_a_track_born_dying_is_never_called_dead() -> None:
    """Dead-looking from its first frame (10), it is a piece of a dying cell: no call, not
    even once the window has slid past its birth; a cell there from the start is called."""
    dying_from_birth = [0.95] * 30
    assert born_at_10(dying_from_birth, born_t=10) == []
    assert born_at_10(dying_from_birth, born_t=None) == [(11, 10)]


def test_a_track_born_alive_that_dies_later_is_called() -> None:
    assert born_at_10(RISE_AT_3, born_t=10) == [(14, 13)]


def test_track_steps_are_on_the_chip_and_skip_missed_frames() -> None:
    """A cell sitting still while the stage drifts has no steps; filled frames give none."""
    rng = np.random.default_rng(5)
    drift = rng.normal(0, 1.2, (10, 2)).cumsum(axis=0)
    state = bare_track_state()
    crop = np.zeros((2, 4, 4), dtype=np.float32)
    for t, (dx, dy) in enumerate(drift):
        x, y = 100.0 + dx, 50.0 + dy
        state.add(t, x, y, 500.0, 0.2, crop, measured=t != 4, drift_px=(dx, dy))
    steps = state.steps_px()
    assert sorted(steps) == [1, 2, 3, 6, 7, 8, 9]  # frame 4 was filled, not measured
    assert max(steps.values()) < 1e-9
    _, _, camera = state.window_arrays("camera")
    _, _, chip = state.window_arrays("chip")
    assert camera[-5:, 0].min() > 0.1  # the drift, seen as speed in the frame
    np.testing.assert_allclose(chip[-5:, 0], np.log(SPEED_FLOOR_PX), atol=1e-6)  # still


def test_onset_context_averages_what_later_windows_said_about_a_frame() -> None:
    """Frame 3 looks dead to the deciding window (ending at 5) but not to the one ending at
    4, which saw one frame past it: with ``onset_context_frames=1`` its probability is the
    mean of the two, 0.55, and the onset moves from frame 3 to frame 4."""
    windows = [
        [0.0, 0.0, 0.0, 0.0],  # ends at frame 0 (padded)
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.1],
        [0.0, 0.0, 0.1, 0.2],  # frames 0..3
        [0.0, 0.1, 0.2, 0.9],  # frames 1..4
        [0.1, 0.9, 0.9, 0.9],  # frames 2..5: the deciding window
        [0.9, 0.9, 0.9, 0.9],
    ]
    alone = feed_windows(watch(threshold=0.8, confirm_frames=2), windows)
    context = feed_windows(watch(threshold=0.8, confirm_frames=2, onset_context_frames=1), windows)
    assert [t for t, _ in alone] == [t for t, _ in context] == [5]
    assert alone[0][1].onset_t == 3
    assert context[0][1].onset_t == 4


probabilities = st.lists(
    st.lists(st.floats(0, 1, width=32), min_size=6, max_size=6), min_size=1, max_size=25
)


@given(
    probabilities,
    st.floats(0.05, 0.95),
    st.floats(0.05, 0.95),
    st.one_of(st.none(), st.integers(-1, 5)),
    st.integers(0, 30),
)
def test_one_death_per_track_with_its_onset_inside_the_deciding_window(
    windows: list[list[float]],
    threshold: float,
    onset_threshold: float,
    context: int | None,
    start: int,
) -> None:
    w = watch(threshold=threshold, onset_threshold=onset_threshold, onset_context_frames=context)
    deaths = [(t, d) for t, d in feed_windows(w, windows, start) if not d.early]
    assert len(deaths) <= 1
    for t, death in deaths:
        assert max(start, t - 5) <= death.onset_t <= t
        assert w.death is death


@given(
    probabilities,
    st.floats(0.05, 0.95),
    st.floats(0.05, 0.95),
    st.floats(0.05, 0.95),
    st.one_of(st.none(), st.integers(-1, 5)),
)
def test_a_lower_onset_threshold_never_places_the_onset_later(
    windows: list[list[float]], threshold: float, a: float, b: float, context: int | None
) -> None:
    low, high = sorted((a, b))
    onsets = []
    for onset_threshold in (low, high):
        w = watch(
            threshold=threshold, onset_threshold=onset_threshold, onset_context_frames=context
        )
        feed_windows(w, windows)
        onsets.append(None if w.death is None else w.death.onset_t)
    assert (onsets[0] is None) == (onsets[1] is None)  # the call does not depend on it
    if onsets[0] is not None and onsets[1] is not None:
        assert onsets[0] <= onsets[1]


def test_onset_memory_stays_within_one_window() -> None:
    """Streaming: however long the track, only the frames of the latest window are kept."""
    w = watch(threshold=0.99, onset_context_frames=2)
    rng = np.random.default_rng(5)
    feed_windows(w, [list(rng.uniform(0, 0.5, 6)) for _ in range(200)])
    assert w.death is None
    assert 0 < len(w._hindsight) <= 6


def test_a_one_frame_dip_after_the_rise_does_not_move_the_onset() -> None:
    """The probability rises at frame 2, dips under the onset threshold at frame 3 and
    stays high after: the onset is the rise, not the frame after the dip."""
    dip = [0.0, 0.05, 0.7, 0.4, 0.9, 0.95]
    called = feed(watch(threshold=0.85, onset_threshold=0.5), dip)
    assert [t for t, _ in called] == [5]
    assert called[0][1].onset_t == 2


@given(
    st.lists(st.floats(0, 0.49), max_size=10),
    st.lists(st.floats(0.51, 1), min_size=1, max_size=10),
)
def test_a_clean_step_has_its_onset_at_the_step(low: list[float], high: list[float]) -> None:
    """Every frame before the step under the onset threshold, every frame from it on
    above: the onset is the step's first frame, whatever the values."""
    dead = np.array(low + high, dtype=np.float64)
    ts = np.arange(10, 10 + len(dead))
    assert _onset(ts, dead, 0.5) == 10 + len(low)
