"""Per-track decisions (one cell type, one monotone death, early necroptosis before death)
and the per-track state the models read."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from livecell.analysis.fates import CellTypeVote, DeathWatch
from livecell.analysis.track_state import TrackState
from livecell.tracking.motion import motion_descriptors
from livecell.tracking.smoothing import FixedLagSmoother

DEATH_CLASSES = ("live", "apoptosis", "necroptosis", "necrosis")


def watch(**overrides: float) -> DeathWatch:
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
    )


def feed(w: DeathWatch, dead_by_frame: list[float], pathway: int = 1) -> list[tuple[int, object]]:
    """Feed per-frame death probabilities through windows of 4 frames; return decisions."""
    out = []
    for t in range(len(dead_by_frame)):
        ts = np.array([max(0, t - 3 + i) for i in range(4)])
        dead = np.array([dead_by_frame[i] for i in ts], dtype=np.float32)
        frame_probs = np.zeros((4, 4), dtype=np.float32)
        frame_probs[:, 0] = 1 - dead
        frame_probs[:, pathway] = dead
        window = frame_probs[-1]
        out += [(t, d) for d in w.update(ts, frame_probs, window)]
    return out


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
    state = TrackState(
        position="Pos0",
        well="r000c000",
        track=1,
        smoother=FixedLagSmoother(lam=0.0, lag=0, window=24),
        window=24,
        cell_type=None,
        death=None,
    )
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
