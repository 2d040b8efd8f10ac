"""Motility arrest: the frame a crawling cell stopped, found near a first estimate;
whether a cell still crawls."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from livecell.tracking.arrest import ArrestRule, arrest_frame, is_crawling

RULE = ArrestRule(before_frames=6, after_frames=2, window_frames=4, contrast=3.0, still_px=2.0)


def crawl_then_stop(
    stop_t: int, frames: int = 30, step_px: float = 3.0, jitter_px: float | None = None
) -> dict[int, float]:
    """Steps of a cell crawling ``step_px`` a frame up to ``stop_t``, jittering after."""
    return {
        t: step_px if t <= stop_t else (0.1 + 0.05 * (t % 3) if jitter_px is None else jitter_px)
        for t in range(1, frames)
    }


@pytest.mark.parametrize("near_t", [8, 9, 10, 11, 12, 14, 16])
def test_the_arrest_is_found_from_any_estimate_within_reach(near_t: int) -> None:
    """Medians over 4 steps cannot tell a clean stop at 10 from one at 9 or 11 (one
    step of the other kind in a window of four leaves its median alone): of those
    equally sharp frames, the one nearest the estimate wins."""
    found = arrest_frame(crawl_then_stop(10, jitter_px=0.1), near_t, last_t=29, rule=RULE)
    assert found == min(max(near_t, 9), 11)


@pytest.mark.parametrize("near_t", [5, 20])
def test_no_arrest_beyond_reach(near_t: int) -> None:
    """Searched from 6 frames before the estimate to 2 after: 5 + 2 = 7 and 20 - 6 = 14
    are too far from the stop at 10 for any window to straddle it."""
    assert arrest_frame(crawl_then_stop(10), near_t, last_t=29, rule=RULE) is None


def test_an_arrest_needs_two_still_steps_seen_by_the_last_frame() -> None:
    steps = crawl_then_stop(10)
    assert arrest_frame(steps, 10, last_t=11, rule=RULE) is None
    assert arrest_frame(steps, 10, last_t=12, rule=RULE) == 10


def test_a_cell_that_never_crawled_has_no_arrest() -> None:
    still = {t: 0.15 for t in range(1, 30)}
    assert arrest_frame(still, 10, last_t=29, rule=RULE) is None


def test_a_slow_crawler_that_stops_has_an_arrest_but_a_steady_one_has_none() -> None:
    slow_then_still = {t: 1.0 if t <= 10 else 0.2 for t in range(1, 30)}
    assert arrest_frame(slow_then_still, 10, last_t=29, rule=RULE) == 10
    slow_then_slower = {t: 1.0 if t <= 10 else 0.5 for t in range(1, 30)}
    assert arrest_frame(slow_then_slower, 12, last_t=29, rule=RULE) is None  # 2 x, not 3 x


def test_a_shove_or_a_jittering_mask_does_not_hide_the_arrest() -> None:
    steps = crawl_then_stop(10)
    steps[13] = 5.0  # a neighbour shoves the dead cell once
    steps[15] = 1.6  # its mask changes shape as it rounds up
    assert arrest_frame(steps, 10, last_t=29, rule=RULE) == 10


def test_a_cell_that_keeps_moving_after_its_stop_has_no_arrest() -> None:
    steps = crawl_then_stop(10)
    for t in range(11, 30, 2):
        steps[t] = 4.0  # pushed every other frame: a median of 2 px or more is not still
    assert arrest_frame(steps, 10, last_t=29, rule=RULE) is None


def test_unmeasured_frames_are_left_out_not_counted_as_still() -> None:
    steps = crawl_then_stop(10)
    for t in (11, 12, 13):
        del steps[t]  # missed by the segmentation: the still side has too few steps
    assert arrest_frame(steps, 10, last_t=14, rule=RULE) is None
    assert arrest_frame(steps, 10, last_t=15, rule=RULE) == 11  # 11: two still steps after


def test_the_sharpest_change_wins() -> None:
    steps = {t: 3.0 if t <= 6 else 0.9 if t <= 12 else 0.1 for t in range(1, 30)}
    # a slow-down at 6 (3 px -> 0.9 px, 3.3 x) and a stop at 12 (0.9 px -> 0.1 px, 9 x)
    assert arrest_frame(steps, 8, last_t=29, rule=RULE) in (6, 7)  # only the slow-down
    assert arrest_frame(steps, 10, last_t=29, rule=RULE) in (11, 12)  # both: the stop wins


def test_is_crawling_reads_the_median_of_the_last_steps() -> None:
    steps = crawl_then_stop(10)
    assert is_crawling(steps, 10, RULE)
    assert is_crawling(steps, 11, RULE)  # 3, 3, 0.1: median 3
    assert not is_crawling(steps, 12, RULE)
    assert not is_crawling({}, 12, RULE)  # nothing known: not held back
    assert not is_crawling(steps, 10, ArrestRule(crawl_frames=0))


def test_rules_are_checked() -> None:
    with pytest.raises(ValueError, match="window_frames"):
        ArrestRule(window_frames=1)
    with pytest.raises(ValueError, match="before_frames"):
        ArrestRule(before_frames=-1)
    with pytest.raises(ValueError, match="still_px"):
        ArrestRule(still_px=0.0)
    with pytest.raises(ValueError, match="contrast"):
        ArrestRule(contrast=0.5)
    with pytest.raises(ValueError, match="crawl_frames"):
        ArrestRule(crawl_frames=-1)


@given(
    steps=st.dictionaries(st.integers(1, 40), st.floats(0, 10), max_size=40),
    later=st.dictionaries(st.integers(41, 60), st.floats(0, 10), max_size=20),
    near_t=st.integers(0, 45),
    last_t=st.integers(0, 40),
)
def test_an_arrest_is_near_uses_only_what_was_seen_and_is_a_sharp_stop(
    steps: dict[int, float], later: dict[int, float], near_t: int, last_t: int
) -> None:
    seen = {t: s for t, s in steps.items() if t <= last_t}
    found = arrest_frame(seen, near_t, last_t, RULE)
    assert found == arrest_frame(seen | later, near_t, last_t, RULE)
    if found is None:
        return
    assert near_t - RULE.before_frames <= found <= near_t + RULE.after_frames
    after = sorted(s for t, s in seen.items() if found < t <= found + RULE.window_frames)
    before = sorted(s for t, s in seen.items() if found - RULE.window_frames < t <= found)
    assert len(after) >= 2
    assert len(before) >= 2
    median_after = (after[(len(after) - 1) // 2] + after[len(after) // 2]) / 2
    median_before = (before[(len(before) - 1) // 2] + before[len(before) // 2]) / 2
    assert median_after < RULE.still_px
    assert median_before >= RULE.contrast * max(median_after, 0.05) * (1 - 1e-9)
