"""Motility arrest: the frame a crawling cell stopped, found near a first estimate."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from livecell.tracking.arrest import ArrestRule, arrest_frame

RULE = ArrestRule(reach_frames=4, moving_px=0.3, still_px=0.7, still_frames=2)


def crawl_then_stop(stop_t: int, frames: int = 30, step_px: float = 3.0) -> dict[int, float]:
    """Steps of a cell crawling ``step_px`` a frame up to ``stop_t``, jittering after."""
    return {t: step_px if t <= stop_t else 0.1 + 0.05 * (t % 3) for t in range(1, frames)}


@pytest.mark.parametrize("near_t", [6, 8, 10, 12, 14])
def test_the_arrest_is_found_from_any_estimate_within_reach(near_t: int) -> None:
    assert arrest_frame(crawl_then_stop(10), near_t, last_t=29, rule=RULE) == 10


def test_no_arrest_beyond_reach() -> None:
    assert arrest_frame(crawl_then_stop(10), 15, last_t=29, rule=RULE) is None


def test_an_arrest_needs_its_still_frames_seen_by_the_last_frame() -> None:
    steps = crawl_then_stop(10)
    assert arrest_frame(steps, 10, last_t=11, rule=RULE) is None
    assert arrest_frame(steps, 10, last_t=12, rule=RULE) == 10


def test_a_cell_that_never_crawled_has_no_arrest() -> None:
    still = {t: 0.15 for t in range(1, 30)}
    assert arrest_frame(still, 10, last_t=29, rule=RULE) is None


def test_one_still_frame_between_pushes_is_no_arrest() -> None:
    steps = crawl_then_stop(10)
    for t in (12, 14, 16):
        steps[t] = 5.0  # a neighbour shoves the cell every other frame
    assert arrest_frame(steps, 10, last_t=29, rule=RULE) is None
    one = ArrestRule(reach_frames=4, moving_px=0.3, still_px=0.7, still_frames=1)
    assert arrest_frame(steps, 10, last_t=29, rule=one) == 10


def test_unmeasured_frames_never_count_as_still() -> None:
    steps = crawl_then_stop(10)
    del steps[12]  # frame 11 or 12 was missed by the segmentation
    assert arrest_frame(steps, 10, last_t=29, rule=RULE) is None


def test_the_nearest_arrest_wins_and_the_earlier_on_a_tie() -> None:
    steps = {t: 3.0 for t in range(1, 30)}
    for t in (9, 10, 13, 14):  # arrests at 8 and at 12
        steps[t] = 0.1
    assert arrest_frame(steps, 11, last_t=29, rule=RULE) == 12
    assert arrest_frame(steps, 9, last_t=29, rule=RULE) == 8
    assert arrest_frame(steps, 10, last_t=29, rule=RULE) == 8  # 2 frames from each


def test_rules_are_checked() -> None:
    with pytest.raises(ValueError, match="still_frames"):
        ArrestRule(still_frames=0)
    with pytest.raises(ValueError, match="still_px"):
        ArrestRule(still_px=0.0)


@given(
    steps=st.dictionaries(st.integers(1, 40), st.floats(0, 10), max_size=40),
    near_t=st.integers(0, 45),
    last_t=st.integers(0, 45),
)
def test_an_arrest_is_near_seen_and_what_the_rule_says(
    steps: dict[int, float], near_t: int, last_t: int
) -> None:
    found = arrest_frame(steps, near_t, last_t, RULE)
    if found is None:
        return
    assert abs(found - near_t) <= RULE.reach_frames
    assert found + RULE.still_frames <= last_t
    assert steps[found] >= RULE.moving_px
    assert all(steps[found + k] < RULE.still_px for k in (1, 2))
