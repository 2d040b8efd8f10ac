"""The per-well tracker: identities kept, containment, mitosis, contacts, determinism."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livecell.tracking.nanowell import (
    NanowellTracker,
    TrackerParams,
    WellUpdate,
    track_rows,
)
from livecell.tracking.observations import Observations

WELL_PX = 120


def render(cells: list[tuple[int, float, float, float]], size: int = WELL_PX) -> np.ndarray:
    """A label image with discs ``(label, x, y, radius)``, later ones on top."""
    image = np.zeros((size, size), np.int32)
    yy, xx = np.mgrid[0:size, 0:size]
    for label, x, y, r in cells:
        image[(xx - x) ** 2 + (yy - y) ** 2 <= r * r] = label
    return image


def identities(updates: list[WellUpdate]) -> list[dict[int, int]]:
    """Per frame: label -> track id."""
    return [{c.label: c.track for c in u.cells if c.label is not None} for u in updates]


def slow_walk(seed: int, cells: int, frames: int) -> list[list[tuple[float, float]]]:
    """Cells on a 2x3 grid of 40 px cells, each moving up to 3 px/frame: they never touch."""
    rng = np.random.default_rng(seed)
    homes = [(20.0 + 40 * (i % 3), 30.0 + 50 * (i // 3)) for i in range(cells)]
    out = []
    offset = np.zeros((cells, 2))
    for _ in range(frames):
        offset = np.clip(offset + rng.uniform(-3, 3, (cells, 2)), -8, 8)
        out.append([(hx + dx, hy + dy) for (hx, hy), (dx, dy) in zip(homes, offset, strict=True)])
    return out


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    cells=st.integers(1, 5),
    frames=st.integers(2, 12),
    data=st.data(),
)
def test_slow_cells_that_never_touch_keep_their_ids_under_any_labelling(
    seed: int, cells: int, frames: int, data: st.DataObject
) -> None:
    tracker = NanowellTracker()
    walk = slow_walk(seed, cells, frames)
    updates = []
    for t, positions in enumerate(walk):
        labels = data.draw(st.permutations(range(1, cells + 1)), label=f"labels at {t}")
        image = render([(lab, x, y, 7.0) for lab, (x, y) in zip(labels, positions, strict=True)])
        update = tracker.update(image, t)
        updates.append(update)
        if t == 0:  # ids are given in label order: cell i is the track its label got
            track_of_cell = [sorted(labels).index(lab) + 1 for lab in labels]
        by_track = {c.track: (c.x, c.y) for c in update.cells}
        assert sorted(by_track) == list(range(1, cells + 1))  # ids 1..n, never a new one
        for i, (x, y) in enumerate(positions):  # cell i keeps its track, whatever its label
            assert by_track[track_of_cell[i]] == pytest.approx((x, y), abs=0.6)
        assert update.contacts == frozenset()
        assert update.started == (tuple(range(1, cells + 1)) if t == 0 else ())
        assert update.ended == ()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cells=st.integers(1, 5))
def test_update_is_deterministic_and_trackers_share_nothing(seed: int, cells: int) -> None:
    walk = slow_walk(seed, cells, 6)
    frames = [render([(i + 1, x, y, 7.0) for i, (x, y) in enumerate(p)]) for p in walk]
    first, second, other = NanowellTracker(), NanowellTracker(), NanowellTracker()
    other.update(frames[-1], 0)  # another tracker's history must not leak in
    a = [first.update(f, t) for t, f in enumerate(frames)]
    b = [second.update(f, t) for t, f in enumerate(frames)]
    assert a == b


def test_a_missed_detection_keeps_the_id_and_the_count() -> None:
    tracker = NanowellTracker()
    cells = [(1, 30.0, 30.0, 8.0), (2, 80.0, 80.0, 10.0), (3, 30.0, 90.0, 6.0)]
    tracker.update(render(cells), 0)
    held = tracker.update(render([cells[0], cells[2]]), 1)
    assert len(held.cells) == 3
    missing = next(c for c in held.cells if c.track == 2)
    assert missing.label is None
    assert not missing.measured
    assert (missing.x, missing.y) == pytest.approx((80.0, 80.0))
    assert held.ended == ()
    assert held.started == ()
    back = tracker.update(render([(7, 84.0, 76.0, 10.0), (1, 30, 30, 8), (3, 30, 90, 6)]), 2)
    assert {c.label: c.track for c in back.cells} == {7: 2, 1: 1, 3: 3}
    assert all(c.measured for c in back.cells)
    rows = [r for r in track_rows([*[held], back]) if r.track == 2]
    assert [r.t for r in rows] == [2]


def test_gaps_are_filled_with_a_straight_line() -> None:
    tracker = NanowellTracker()
    frames = [
        render([(1, 20.0, 20.0, 8.0), (2, 90, 90, 8)]),
        render([(2, 90, 90, 8)]),
        render([(2, 90, 90, 8)]),
        render([(1, 50.0, 50.0, 8.0), (2, 90, 90, 8)]),
    ]
    rows = [r for r in track_rows([tracker.update(f, t) for t, f in enumerate(frames)])]
    one = [(r.t, round(r.x), round(r.y), r.measured) for r in rows if r.track == 1]
    assert one == [(0, 20, 20, True), (1, 30, 30, False), (2, 40, 40, False), (3, 50, 50, True)]


def test_a_cell_missing_longer_than_allowed_ends_and_a_new_blob_starts_a_track() -> None:
    tracker = NanowellTracker(TrackerParams(max_missed_frames=2))
    tracker.update(render([(1, 30.0, 30.0, 8.0), (2, 90, 90, 8)]), 0)
    assert tracker.update(render([(2, 90, 90, 8)]), 1).ended == ()
    assert tracker.update(render([(2, 90, 90, 8)]), 2).ended == ()
    gone = tracker.update(render([(2, 90, 90, 8)]), 3)
    assert gone.ended == (1,)
    assert [c.track for c in gone.cells] == [2]
    new = tracker.update(render([(2, 90, 90, 8), (5, 30, 30, 8)]), 4)
    assert new.started == (3,)


def test_containment_gives_a_far_blob_to_the_held_track_and_a_field_starts_a_new_one() -> None:
    frames = [
        render([(1, 15.0, 15.0, 8.0), (2, 60, 60, 8)]),
        render([(2, 60, 60, 8)]),
        render([(2, 60, 60, 8), (1, 105.0, 105.0, 8.0)]),
    ]
    well = NanowellTracker(TrackerParams(max_link_distance_px=40))
    field = NanowellTracker(TrackerParams(max_link_distance_px=40, containment=False))
    in_well = [well.update(f, t) for t, f in enumerate(frames)][-1]
    in_field = [field.update(f, t) for t, f in enumerate(frames)][-1]
    assert {c.label: c.track for c in in_well.cells if c.measured} == {2: 2, 1: 1}
    assert in_well.started == ()
    assert {c.label: c.track for c in in_field.cells if c.measured} == {2: 2, 1: 3}
    assert in_field.started == (3,)


def test_mitosis_ends_the_parent_and_starts_two_daughters_naming_it() -> None:
    tracker = NanowellTracker()
    tracker.update(render([(1, 40.0, 60.0, 14.0), (2, 100, 100, 8)]), 0)
    tracker.update(render([(1, 41.0, 60.0, 14.0), (2, 100, 100, 8)]), 1)
    # a rounded cell's daughters spread at once: together larger than it was
    split = tracker.update(
        render([(4, 28.0, 60.0, 12.0), (3, 54.0, 60.0, 12.0), (2, 100, 100, 8)]), 2
    )
    assert split.ended == (1,)
    assert split.started == (3, 4)
    daughters = {c.track: c for c in split.cells if c.track in split.started}
    assert {c.parent for c in daughters.values()} == {1}
    assert {c.track: c.label for c in daughters.values()} == {3: 3, 4: 4}
    assert [c.track for c in split.cells] == [2, 3, 4]
    after = tracker.update(
        render([(1, 27.0, 60.0, 12.0), (2, 55.0, 61.0, 12.0), (3, 100, 100, 8)]), 3
    )
    assert {c.label: c.track for c in after.cells} == {1: 4, 2: 3, 3: 2}


def cut(image: np.ndarray, label: int, x_from: float, piece: int) -> np.ndarray:
    """``image`` with the part of ``label`` right of ``x_from`` relabelled ``piece``."""
    out = image.copy()
    xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]][1]
    out[(image == label) & (xx > x_from)] = piece
    return out


def test_a_piece_cut_off_a_cell_stays_part_of_its_track() -> None:
    tracker = NanowellTracker()
    cells = [(1, 40.0, 60.0, 14.0), (2, 90.0, 60.0, 8.0)]
    tracker.update(render(cells), 0)
    whole = tracker.update(render(cells), 1)
    split = tracker.update(cut(render(cells), 1, 47.0, 7), 2)
    assert split.started == ()
    cell = next(c for c in split.cells if c.track == 1)
    assert (cell.label, cell.fragments) == (1, (7,))
    before = next(c for c in whole.cells if c.track == 1)
    assert cell.area_px == before.area_px
    assert abs(cell.x - before.x) < 1e-9
    assert abs(cell.y - before.y) < 1e-9
    assert split.contacts == frozenset()  # the two pieces of one cell are no contact
    # the piece touches cell 2: a contact of the cell it belongs to
    near = [(1, 40.0, 60.0, 14.0), (2, 63.0, 60.0, 8.0)]  # 1 reaches x 54, 2 from 55
    touching = tracker.update(cut(render(near), 1, 47.0, 7), 3)
    assert touching.contacts == frozenset({(1, 2)})
    assert touching.started == ()


def test_a_cell_cut_in_halves_is_one_cell_not_a_division() -> None:
    tracker = NanowellTracker()
    cells = [(1, 40.0, 60.0, 14.0), (2, 100.0, 100.0, 8.0)]
    tracker.update(render(cells), 0)
    tracker.update(render(cells), 1)
    halves = tracker.update(cut(render(cells), 1, 40.0, 5), 2)
    assert (halves.started, halves.ended) == ((), ())
    assert next(c for c in halves.cells if c.track == 1).fragments == (5,)


def test_a_new_cell_touching_another_is_not_taken_for_a_piece() -> None:
    tracker = NanowellTracker()
    tracker.update(render([(1, 40.0, 60.0, 12.0)]), 0)
    # a second cell as big as the first: together twice the track's area
    grown = tracker.update(render([(1, 40.0, 60.0, 12.0), (2, 63.0, 60.0, 10.0)]), 1)
    assert grown.started == (2,)
    assert grown.contacts == frozenset({(1, 2)})


def test_without_containment_a_piece_starts_a_track() -> None:
    tracker = NanowellTracker(TrackerParams(containment=False, max_link_distance_px=30.0))
    cells = [(1, 40.0, 60.0, 14.0)]
    tracker.update(render(cells), 0)
    split = tracker.update(cut(render(cells), 1, 47.0, 7), 1)
    assert split.started == (2,)
    assert all(c.fragments == () for c in split.cells)


def test_touching_and_overlapping_cells_are_contacts_by_track_id() -> None:
    tracker = NanowellTracker()
    apart = tracker.update(render([(5, 30.0, 30.0, 10.0), (9, 70.0, 30.0, 10.0)]), 0)
    assert apart.contacts == frozenset()
    # 21 px apart with radius 10: the outlines are one pixel apart (touch after dilation)
    touching = tracker.update(render([(5, 39.0, 30.0, 10.0), (9, 60.0, 30.0, 10.0)]), 1)
    assert touching.contacts == frozenset({(1, 2)})
    overlapping = tracker.update(render([(9, 55.0, 30.0, 10.0), (5, 45.0, 30.0, 6.0)]), 2)
    assert overlapping.contacts == frozenset({(1, 2)})


def test_after_a_contact_the_partners_keep_their_identities() -> None:
    """Two cells of equal size meet, then part crossing paths: the motion model decides."""
    tracker = NanowellTracker()
    path_a = [(20.0, 50.0), (35.0, 50.0), (50.0, 52.0), (65.0, 54.0), (80.0, 56.0)]
    path_b = [(100.0, 60.0), (85.0, 60.0), (70.0, 58.0), (55.0, 56.0), (40.0, 54.0)]
    updates = [
        tracker.update(render([(1, *a, 9.0), (2, *b, 9.0)]), t)
        for t, (a, b) in enumerate(zip(path_a, path_b, strict=True))
    ]
    assert any(u.contacts for u in updates)
    assert all(m == {1: 1, 2: 2} for m in identities(updates))


@pytest.mark.parametrize(
    "bad",
    [
        {"max_link_distance_px": 0.0},
        {"velocity_smoothing": 0.0},
        {"max_missed_frames": -1},
        {"mitosis_area_ratio": (0.8, 0.5)},
        {"appearance_weight_px": -1.0},
        {"appearance_scale": 0.0},
        {"appearance_contact_smoothing": 1.5},
        {"fragment_area_ratio": (1.2, 0.8)},
        {"slow_speed_px": -1.0},
        {"slow_gain_max": 0.5},
    ],
)
def test_params_out_of_range_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        TrackerParams(**bad)  # type: ignore[arg-type]


def test_frames_must_increase() -> None:
    tracker = NanowellTracker()
    tracker.update(render([]), 4)
    with pytest.raises(ValueError, match="increase"):
        tracker.update(render([]), 4)


def appearance_image(
    cells: list[tuple[int, float, float, float]], levels: dict[int, float]
) -> np.ndarray:
    """Phase-like pixels for :func:`render`'s discs: background 1000, each label its level."""
    labels = render(cells)
    image = np.full(labels.shape, 1000.0)
    for label, level in levels.items():
        image[labels == label] = level
    return image


def test_equal_cells_that_jump_past_each_other_are_told_apart_by_appearance() -> None:
    """Two cells of one area swap places in one frame (an effector's jump): position and
    area say "stayed"; only the pixels inside the masks (dark and bright) tell the truth."""
    frames = [
        [(1, 30.0, 60.0, 10.0), (2, 90.0, 60.0, 10.0)],
        [(1, 35.0, 60.0, 10.0), (2, 85.0, 60.0, 10.0)],
        [(1, 88.0, 58.0, 10.0), (2, 32.0, 62.0, 10.0)],  # swapped: label follows the cell
        [(1, 84.0, 58.0, 10.0), (2, 36.0, 62.0, 10.0)],
    ]
    levels = {1: 600.0, 2: 1300.0}  # dark thick cell, bright flat one
    seen = NanowellTracker()
    blind = NanowellTracker()
    by_sight = [
        seen.update(render(f), t, appearance_image(f, levels)) for t, f in enumerate(frames)
    ]
    by_place = [blind.update(render(f), t) for t, f in enumerate(frames)]
    assert all(m == {1: 1, 2: 2} for m in identities(by_sight))
    assert identities(by_place)[2] == {1: 2, 2: 1}  # without the image the ids swap
    assert [len(u.cells) for u in by_sight] == [2, 2, 2, 2]


def still_pair(t: int, area_a: float, area_b: float) -> Observations:
    """Two cells 60 px apart that jitter by about a pixel a frame."""
    jitter = (-1.0) ** t
    return Observations.from_arrays(
        np.array([1, 2]),
        np.array([50.0 + jitter, 110.0]),
        np.array([60.0, 60.0 + jitter]),
        np.array([area_a, area_b]),
    )


@pytest.mark.parametrize(("slow_speed_px", "swapped"), [(20.0, False), (0.0, True)])
def test_a_still_cell_keeps_its_place_when_its_area_changes(
    slow_speed_px: float, swapped: bool
) -> None:
    """One still cell swells (a necroptotic cell), the other is half hidden under a passing
    effector: each new area fits the other's old one better. For cells that have not moved
    in frames a 60 px jump is the less likely story, and the slow gain says so."""
    tracker = NanowellTracker(TrackerParams(slow_speed_px=slow_speed_px))
    updates = [tracker.update_observations(still_pair(t, 1130.0, 1360.0), t) for t in range(6)]
    updates.append(tracker.update_observations(still_pair(6, 1307.0, 1161.0), 6))
    assert identities(updates)[5] == {1: 1, 2: 2}
    assert identities(updates)[6] == ({1: 2, 2: 1} if swapped else {1: 1, 2: 2})


def random_observations(rng: np.random.Generator, n: int, with_appearance: bool) -> Observations:
    return Observations.from_arrays(
        rng.permutation(n) + 1,
        rng.uniform(0, 200, n),
        rng.uniform(0, 200, n),
        rng.uniform(200, 900, n),
        appearance=np.column_stack([rng.uniform(0.6, 1.4, n), rng.uniform(0.02, 0.3, n)])
        if with_appearance
        else None,
    )


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=st.lists(st.integers(0, 12), min_size=2, max_size=6),
    weight=st.sampled_from([0.0, 3.0, 30.0, 300.0]),
    slow_speed_px=st.sampled_from([0.0, 20.0, 200.0]),
)
def test_small_and_numpy_costs_agree_with_appearance(
    seed: int, sizes: list[int], weight: float, slow_speed_px: float
) -> None:
    """Both cost paths give the same matrices, some tracks lacking an appearance."""
    rng = np.random.default_rng(seed)
    tracker = NanowellTracker(
        TrackerParams(
            appearance_weight_px=weight,
            contact_penalty=50.0,
            speed_weight=0.5,
            slow_speed_px=slow_speed_px,
        )
    )
    for t, n in enumerate(sizes[:-1]):
        tracker.update_observations(random_observations(rng, n, bool(t % 3)), t)
    obs = random_observations(rng, sizes[-1], True)
    xs, ys, areas = obs.x_px.tolist(), obs.y_px.tolist(), obs.area_px.tolist()
    assert obs.appearance is not None
    apps = [tuple(a) for a in obs.appearance.tolist()]
    t = len(sizes)
    small_f, small_b = tracker._costs_small(xs, ys, areas, t, apps)
    big_f, big_b = tracker._costs(obs.x_px, obs.y_px, obs.area_px, t, apps)
    shape = (len(tracker._tracks), len(xs))
    np.testing.assert_allclose(np.array(small_f).reshape(shape), big_f, rtol=1e-12)
    np.testing.assert_allclose(np.array(small_b).reshape(shape), big_b, rtol=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), frames=st.integers(1, 10), most=st.integers(1, 12))
def test_appearance_changes_nothing_at_weight_zero_or_when_absent(
    seed: int, frames: int, most: int
) -> None:
    """Observations without appearance, or a zero weight, give the label-only updates."""
    rng = np.random.default_rng(seed)
    seen = [random_observations(rng, int(rng.integers(0, most + 1)), True) for _ in range(frames)]
    plain = [Observations(o.label, o.x_px, o.y_px, o.area_px, o.bbox) for o in seen]
    reference = NanowellTracker()
    zero = NanowellTracker(TrackerParams(appearance_weight_px=0.0))
    expected = [reference.update_observations(o, t) for t, o in enumerate(plain)]
    assert [zero.update_observations(o, t) for t, o in enumerate(seen)] == expected
    unweighted = NanowellTracker(TrackerParams(appearance_weight_px=0.0))
    assert [unweighted.update_observations(o, t) for t, o in enumerate(plain)] == expected


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=st.lists(st.integers(1, 8), min_size=3, max_size=6),
    slow_speed_px=st.floats(1.0, 120.0),
    gain_max=st.floats(1.0, 10.0),
)
def test_the_slow_gain_only_raises_the_costs_of_slow_tracks(
    seed: int, sizes: list[int], slow_speed_px: float, gain_max: float
) -> None:
    """One tracker's state, costed with the gain on and off: rows of tracks at or above
    ``slow_speed_px`` are unchanged; a slow track's row never costs less, nor more than
    ``gain_max`` times as much."""
    rng = np.random.default_rng(seed)
    frames = [random_observations(rng, n, True) for n in sizes]
    on = NanowellTracker(TrackerParams(slow_speed_px=slow_speed_px, slow_gain_max=gain_max))
    for t, obs in enumerate(frames[:-1]):
        on.update_observations(obs, t)
    off = copy.deepcopy(on)
    off.params = TrackerParams(slow_speed_px=0.0)
    obs = frames[-1]
    assert obs.appearance is not None
    apps = [tuple(a) for a in obs.appearance.tolist()]
    args = (obs.x_px.tolist(), obs.y_px.tolist(), obs.area_px.tolist(), len(frames), apps)
    cost_on, cost_off = on._costs_small(*args)[0], off._costs_small(*args)[0]
    for track, row_on, row_off in zip(on._tracks, cost_on, cost_off, strict=True):
        if track.speed is None or track.speed >= slow_speed_px:
            assert row_on == row_off
        else:
            assert all(a >= b for a, b in zip(row_on, row_off, strict=True))
            assert all(a <= gain_max * b + 1e-9 for a, b in zip(row_on, row_off, strict=True))
