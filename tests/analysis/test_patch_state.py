"""Per-patch hysteresis: flickers are never deaths, held states always are, onsets right."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livecell.analysis.patch_state import (
    HysteresisParams,
    PatchDecision,
    PatchTrack,
    death_pathway,
)

CLASSES = ("live_control", "live_treated", "apoptosis", "necroptosis", "necrosis")
LIVE, TREATED, APOPTOSIS, NECROPTOSIS, NECROSIS = range(5)


@pytest.fixture(autouse=True)
def _strict_numpy() -> Iterator[None]:
    old = np.seterr(all="raise")
    yield
    np.seterr(**old)


def probs(k: int, p: float = 0.9) -> np.ndarray:
    """Class ``k`` at probability ``p``, the rest shared out (live_control a bit more)."""
    out = np.full(5, (1 - p) / 5, dtype=np.float32)
    out[0] += (1 - p) / 5
    out[k] = p
    return out / out.sum()


def run(track: PatchTrack, calls: Sequence[int | None]) -> tuple[list[int], list[PatchDecision]]:
    states, decisions = [], []
    for t, k in enumerate(calls):
        state, new = track.update(t, None if k is None else probs(k))
        states.append(state)
        decisions += new
    return states, decisions


calls = st.lists(st.sampled_from([LIVE, TREATED, APOPTOSIS, NECROPTOSIS, NECROSIS, None]))


@settings(max_examples=300, deadline=None)
@given(calls=calls.filter(bool), confirm=st.integers(2, 5))
def test_a_death_state_shorter_than_confirm_frames_is_never_a_death(
    calls: list[int | None], confirm: int
) -> None:
    # break every death run so that none reaches confirm_frames frames
    broken: list[int | None] = []
    run_len = 0
    last: int | None = None
    for k in calls:
        run_len = run_len + 1 if k == last and k is not None and k >= APOPTOSIS else 1
        if k is not None and k >= APOPTOSIS and run_len >= confirm:
            broken.append(LIVE)
            run_len, last = 1, LIVE
            continue
        broken.append(k)
        last = k
    params = HysteresisParams(CLASSES, confirm_frames=confirm, early_threshold=1.0)
    states, decisions = run(PatchTrack(params), broken)
    assert decisions == []
    assert all(s in (-1, LIVE, TREATED) for s in states)


@settings(max_examples=300, deadline=None)
@given(
    before=calls,
    death=st.sampled_from([APOPTOSIS, NECROPTOSIS, NECROSIS]),
    confirm=st.integers(1, 5),
    extra=st.integers(0, 4),
    after=calls,
)
def test_a_held_death_state_is_always_one_death_with_the_run_start_as_onset(
    before: list[int | None], death: int, confirm: int, extra: int, after: list[int | None]
) -> None:
    before = [k if k is None or k < APOPTOSIS else LIVE for k in before]  # live history
    params = HysteresisParams(CLASSES, confirm_frames=confirm, early_threshold=1.0)
    held = [death] * (confirm + extra)
    states, decisions = run(PatchTrack(params), [*before, None, *held, *after])
    onset = len(before) + 1
    [decision] = decisions
    assert (decision.pathway, decision.onset_t, decision.early) == (CLASSES[death], onset, False)
    assert decision.confidence == pytest.approx(0.9)
    assert states[onset + confirm - 1 : onset + len(held)] == [death] * (extra + 1)
    assert states[: onset + confirm - 1] == [*states[:onset], *[LIVE] * (confirm - 1)]


def test_the_reported_state_leaves_a_death_only_after_confirm_live_frames() -> None:
    track = PatchTrack(HysteresisParams(CLASSES, confirm_frames=3, early_threshold=1.0))
    states, decisions = run(
        track, [NECROSIS] * 3 + [TREATED] * 2 + [NECROSIS] + [TREATED] * 3 + [NECROSIS] * 3
    )
    held = [NECROSIS] * 6  # two live frames, a necrosis flicker and two more are not enough
    assert states == [LIVE, LIVE, *held, TREATED, LIVE, LIVE, NECROSIS]
    assert [d.onset_t for d in decisions] == [0]  # once per patch lifetime


def test_a_low_confidence_death_call_counts_as_live() -> None:
    track = PatchTrack(HysteresisParams(CLASSES, confirm_frames=2, death_min_confidence=0.6))
    for t in range(5):
        state, decisions = track.update(t, probs(APOPTOSIS, 0.55))
        assert decisions == []
        assert state == LIVE


def test_early_necroptosis_comes_before_the_death_once() -> None:
    params = HysteresisParams(
        CLASSES, confirm_frames=3, death_min_confidence=0.6, early_threshold=0.4, early_frames=2
    )
    track = PatchTrack(params)
    seen: list[tuple[int, PatchDecision]] = []
    for t, p in enumerate([0.3, 0.45, 0.5, 0.7, 0.8, 0.9, 0.9, 0.9]):
        seen += [(t, d) for d in track.update(t, probs(NECROPTOSIS, p))[1]]
    assert [(t, d.early, d.onset_t) for t, d in seen] == [(2, True, 1), (5, False, 3)]
    assert seen[0][1].confidence == pytest.approx(0.475)
    assert seen[1][1].pathway == "necroptosis"


def test_pathway_names_and_a_model_without_live_classes_is_refused() -> None:
    assert death_pathway("apoptosis") == "apoptosis"
    assert death_pathway("dead") == "death"
    with pytest.raises(ValueError, match="no live class"):
        HysteresisParams(("dead", "necrosis"))
