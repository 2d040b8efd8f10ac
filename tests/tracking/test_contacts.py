"""Contact hysteresis: one missing frame does not split a contact; ends name the last frame."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from livecell.tracking.contacts import Contact, ContactHysteresis


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
