"""Contact hysteresis: one missing frame does not split a contact; ends name the last frame."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from livecell.tracking.contacts import Contact, ContactHysteresis, NewTrackHold


def feed(frames: list[set[tuple[int, int]]]) -> tuple[list[tuple[int, int, int]], list[Contact]]:
    hysteresis = ContactHysteresis()
    started: list[tuple[int, int, int]] = []
    ended: list[Contact] = []
    for t, pairs in enumerate(frames):
        changes = hysteresis.update(pairs, t)
        started += [(*pair, t) for pair in changes.started]
        ended += changes.ended
    return started, [*ended, *hysteresis.finish()]


def test_a_single_missing_frame_does_not_split_a_contact() -> None:
    started, ended = feed([{(1, 2)}, set(), {(2, 1)}, {(1, 2)}, set(), set(), set()])
    assert started == [(1, 2, 0)]
    assert ended == [Contact(1, 2, 0, 3)]


def test_two_missing_frames_end_the_contact_at_its_last_frame() -> None:
    hysteresis = ContactHysteresis()
    assert hysteresis.update([(3, 4)], 5).started == ((3, 4),)
    assert hysteresis.update([], 6).ended == ()
    assert hysteresis.update([], 7).ended == (Contact(3, 4, 5, 5),)
    assert hysteresis.open_pairs == frozenset()
    assert hysteresis.update([(4, 3)], 8).started == ((3, 4),)


def test_a_contact_open_at_the_end_is_closed_by_finish() -> None:
    _, ended = feed([set(), {(1, 2), (2, 3)}, {(1, 2)}])
    assert ended == [Contact(1, 2, 1, 2), Contact(2, 3, 1, 1)]


def test_frames_must_increase() -> None:
    hysteresis = ContactHysteresis()
    hysteresis.update([], 3)
    with pytest.raises(ValueError, match="increase"):
        hysteresis.update([], 3)


@given(st.lists(st.booleans(), min_size=1, max_size=30))
def test_contacts_cover_every_frame_in_contact_and_bridge_only_single_gaps(
    present: list[bool],
) -> None:
    _, ended = feed([{(1, 2)} if p else set() for p in present])
    covered = {t for c in ended for t in range(c.start_t, c.end_t + 1)}
    assert {t for t, p in enumerate(present) if p} <= covered
    for c in ended:  # every contact starts and ends on a frame in contact
        assert present[c.start_t]
        assert present[c.end_t]
        inside = present[c.start_t : c.end_t + 1]
        assert "FF" not in "".join("T" if p else "F" for p in inside)
    for a, b in itertools.pairwise(ended):  # separate contacts: a 2+ frame gap
        assert b.start_t - a.end_t > 2


def test_a_new_tracks_items_wait_until_it_has_lived_min_frames() -> None:
    hold: NewTrackHold[str] = NewTrackHold(min_frames=3)
    hold.born(9, t=10)
    assert hold.update([((1, 2), "old pair")], t=10) == ["old pair"]
    assert hold.update([((1, 9), "start 10")], t=10) == []
    assert hold.update([((9, 2), "start 11")], t=11) == []
    assert hold.update([((1, 9), "end 12")], t=12) == ["start 10", "start 11", "end 12"]
    assert hold.update([((2, 9), "later")], t=13) == ["later"]


def test_a_track_that_ends_young_takes_its_items_with_it() -> None:
    hold: NewTrackHold[str] = NewTrackHold(min_frames=8)
    hold.born(5, t=3)
    hold.born(6, t=3)
    assert hold.update([((1, 5), "a"), ((5, 6), "b"), ((1, 6), "c"), ((1, 2), "d")], t=3) == ["d"]
    hold.ended(5)
    assert hold.update([], t=9) == []
    assert hold.update([], t=10) == ["c"]


def test_min_frames_one_holds_nothing() -> None:
    hold: NewTrackHold[int] = NewTrackHold(min_frames=1)
    hold.born(4, t=2)
    assert hold.update([((4, 1), 7)], t=2) == [7]
    with pytest.raises(ValueError, match="min_frames"):
        NewTrackHold(min_frames=-1)
