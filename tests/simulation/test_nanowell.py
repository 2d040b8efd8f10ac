"""The nanowell simulator's ground truth against its own pixels, and its biology.

Small frames (256 to 512 px, 1 or 2 x 2 wells) keep the suite fast; the
full-size frame is only built once, to check the default lattice.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from functools import cache

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livecell.simulation.baseline import nanowell_live_dead_baseline
from livecell.simulation.nanowell import CHANNELS, NanowellParams, NanowellSimulator
from livecell.simulation.scene import (
    APOPTOSIS,
    CELL_STATES,
    CELL_TYPES,
    EFFECTOR,
    LIVE,
    NECROPTOSIS,
    NECROSIS,
    TARGET,
    SimFrame,
)

SMALL = NanowellParams(frame_size_px=512, wells_per_side=2, positions=2, mean_cells_per_well=3.0)
BUSY = dataclasses.replace(
    SMALL,
    kill_rate_per_contact_h=20.0,
    seek_rate_per_h=12.0,
    kill_delay_min=(5.0, 30.0),
    mitosis_per_h=0.3,
    spontaneous_death_per_h=0.1,
)


@cache
def run(params: NanowellParams, seed: int, frames: int) -> tuple[NanowellSimulator, list[SimFrame]]:
    """Simulate once per (params, seed, frames); tests only read the result."""
    sim = NanowellSimulator(params, seed=seed)
    out = []
    for _ in range(frames):
        out.extend(sim.step())
    return sim, out


def check_frame(sim: NanowellSimulator, frame: SimFrame) -> None:
    """The truth rows against the label image, and every cell inside its well."""
    p = sim.params
    labels = frame.labels
    assert labels.dtype == np.int32
    assert labels.shape == (p.frame_size_px, p.frame_size_px)
    tracks = [c.track for c in frame.cells]
    assert len(set(tracks)) == len(tracks)
    assert set(np.unique(labels).tolist()) - {0} == set(tracks)
    wells = {w.well: w for w in sim.summary().wells[frame.position]}
    inside_some_well = np.zeros(labels.shape, bool)
    for w in wells.values():
        inside_some_well[w.y0 : w.y1, w.x0 : w.x1] = True
    assert not np.any(labels[~inside_some_well]), "a label outside every well"
    per_well: dict[str, int] = defaultdict(int)
    for cell in frame.cells:
        ys, xs = np.nonzero(labels == cell.track)
        assert cell.area == xs.size > 0
        assert cell.x == pytest.approx(xs.mean(), abs=1e-9)
        assert cell.y == pytest.approx(ys.mean(), abs=1e-9)
        w = wells[cell.well]
        assert w.x0 <= xs.min()
        assert xs.max() < w.x1
        assert w.y0 <= ys.min()
        assert ys.max() < w.y1
        assert cell.cell_type in CELL_TYPES
        assert cell.state in CELL_STATES
        per_well[cell.well] += 1
    assert max(per_well.values(), default=0) <= p.max_cells_per_well


def histories(frames: list[SimFrame]) -> dict[tuple[str, int], list[tuple[int, str, str, int]]]:
    """(position, track) -> [(t, state, well, area)] in time order."""
    out: dict[tuple[str, int], list[tuple[int, str, str, int]]] = defaultdict(list)
    for frame in frames:
        for c in frame.cells:
            out[(frame.position, c.track)].append((frame.t, c.state, c.well, c.area))
    return out


# ---------------------------------------------------------------- determinism


def test_same_seed_same_frames_and_truth() -> None:
    a, b = NanowellSimulator(SMALL, seed=5), NanowellSimulator(SMALL, seed=5)
    other = NanowellSimulator(SMALL, seed=6)
    for _ in range(4):
        fa, fb, fo = a.step(), b.step(), other.step()
        for x, y in zip(fa, fb, strict=True):
            np.testing.assert_array_equal(x.image, y.image)
            np.testing.assert_array_equal(x.labels, y.labels)
            assert x.cells == y.cells
            assert x.parents == y.parents
        assert not np.array_equal(fa[0].image, fo[0].image)
    assert a.summary() == b.summary()


def test_frames_are_uint16_yx_with_positions_and_times() -> None:
    sim, frames = run(SMALL, 1, 3)
    assert sim.positions == ("Pos0", "Pos1")
    assert [(f.position, f.t) for f in frames] == [
        (p, t) for t in range(3) for p in ("Pos0", "Pos1")
    ]
    for f in frames:
        assert f.image.dtype == np.uint16
        assert f.image.shape == (512, 512)
        assert f.axes == "YX"
        assert f.pixel_size_um == pytest.approx(0.325)
    assert not np.array_equal(frames[0].image, frames[1].image), "positions look alike"


# ---------------------------------------------------------------- truth vs pixels


def test_labels_match_cells_and_stay_inside_wells() -> None:
    sim, frames = run(BUSY, 2, 40)
    for frame in frames:
        check_frame(sim, frame)


def test_default_lattice_is_8_by_8_wells_with_visible_walls() -> None:
    p = NanowellParams()
    sim = NanowellSimulator(dataclasses.replace(p, mean_cells_per_well=0.0), seed=0)
    wells = sim.summary().wells["Pos0"]
    assert len(wells) == 64
    assert {w.well for w in wells} == {f"r{r:03d}c{c:03d}" for r in range(8) for c in range(8)}
    image = sim.step()[0].image.astype(np.float64)
    for w in wells[:8]:
        floor = np.median(image[w.y0 + 20 : w.y1 - 20, w.x0 + 20 : w.x1 - 20])
        rim = image[w.y0 : w.y1, w.x0 - 12 : w.x0 + 4]  # the left wall edge, with drift
        assert np.abs(rim - floor).max() > 0.15 * floor, "wall not visible"


def test_containment_each_track_keeps_its_well_and_counts_stay_bounded() -> None:
    _, frames = run(BUSY, 2, 40)
    for history in histories(frames).values():
        assert len({well for _, _, well, _ in history}) == 1
        ts = [t for t, *_ in history]
        assert ts == list(range(ts[0], ts[-1] + 1)), "a track vanished and came back"


# ---------------------------------------------------------------- contacts, deaths


def test_deaths_follow_contacts_and_states_are_monotone() -> None:
    sim, frames = run(BUSY, 2, 40)
    summary = sim.summary()
    hist = histories(frames)
    n_killed = 0
    for position in sim.positions:
        contacts = summary.contacts[position]
        kills = sim.kills(position)
        for c in contacts:
            assert c.track_a < c.track_b
            assert c.start_t <= c.end_t
        for death in summary.deaths[position]:
            assert death.marker_t > death.onset_t
            assert death.pathway in (APOPTOSIS, NECROPTOSIS, NECROSIS)
            for t, state, well, _ in hist[(position, death.track)]:
                assert well == death.well
                assert state == (death.pathway if t >= death.onset_t else LIVE)
            if death.track in kills:
                n_killed += 1
                pair = tuple(sorted((death.track, kills[death.track])))
                starts = [c.start_t for c in contacts if (c.track_a, c.track_b) == pair]
                assert starts
                assert min(starts) < death.onset_t
        dead = {d.track for d in summary.deaths[position]}
        for (pos, track), history in hist.items():
            if pos == position and track not in dead:
                assert all(state == LIVE for _, state, _, _ in history)
    assert n_killed >= 3, "the busy scenario should kill targets by contact"


def test_cells_touching_in_the_labels_are_in_contact() -> None:
    sim, frames = run(BUSY, 2, 40)
    summary = sim.summary()
    kernel = np.ones((3, 3), np.uint8)
    seen = 0
    for frame in frames:
        active = {
            (c.track_a, c.track_b)
            for c in summary.contacts[frame.position]
            if c.start_t <= frame.t <= c.end_t
        }
        for cell in frame.cells:
            mask = (frame.labels == cell.track).astype(np.uint8)
            ring = cv2.dilate(mask, kernel).astype(bool) & ~mask.astype(bool)
            for other in set(np.unique(frame.labels[ring]).tolist()) - {0}:
                seen += 1
                assert (min(cell.track, other), max(cell.track, other)) in active
    assert seen > 0


def test_contacts_only_between_cells_of_one_well_present_then() -> None:
    sim, frames = run(BUSY, 2, 40)
    present = {(f.position, f.t, c.track): c.well for f in frames for c in f.cells}
    assert any(sim.summary().contacts.values()), "BUSY wells make contacts to check"
    for position, contacts in sim.summary().contacts.items():
        for c in contacts:
            for t in range(c.start_t, c.end_t + 1):
                assert present[(position, t, c.track_a)] == c.well
                assert present[(position, t, c.track_b)] == c.well


def only(pathway: str) -> NanowellParams:
    weights = tuple(1.0 if p == pathway else 0.0 for p in (APOPTOSIS, NECROPTOSIS, NECROSIS))
    return dataclasses.replace(
        SMALL,
        positions=1,
        kill_rate_per_contact_h=0.0,
        mitosis_per_h=0.0,
        spontaneous_death_per_h=0.6,
        spontaneous_pathway_weights=weights,  # type: ignore[arg-type]
    )


def areas_around_onset(pathway: str) -> list[tuple[int, list[tuple[int, int]]]]:
    """For each death: (onset_t, [(t, area)]) over the track's life."""
    sim, frames = run(only(pathway), 7, 36)
    hist = histories(frames)
    deaths = sim.summary().deaths["Pos0"]
    assert len(deaths) >= 3
    assert {d.pathway for d in deaths} == {pathway}
    return [(d.onset_t, [(t, a) for t, _, _, a in hist[("Pos0", d.track)]]) for d in deaths]


def test_apoptosis_shrinks_slowly_from_a_subtle_start() -> None:
    late_ratios = []
    for onset, series in areas_around_onset(APOPTOSIS):
        before = [a for t, a in series if t < onset]
        after = dict(series)
        if len(before) < 2 or onset + 14 not in after:
            continue
        base = float(np.median(before))
        assert abs(after[onset] / base - 1) < 0.2, "the first apoptotic frame must be subtle"
        late_ratios.append(after[onset + 14] / base)
    assert late_ratios
    assert float(np.median(late_ratios)) < 0.8


def test_necroptosis_swells_then_stays_as_a_ghost() -> None:
    ratios = []
    for onset, series in areas_around_onset(NECROPTOSIS):
        before = [a for t, a in series if t < onset]
        if len(before) < 2:
            continue
        base = float(np.median(before))
        late = [a for t, a in series if t >= onset + 10]
        if late:
            ratios.append(max(late) / base)
        assert series[-1][0] == 35, "necroptotic ghosts persist"
    assert ratios
    assert float(np.median(ratios)) > 1.2


def test_necrosis_swells_fast_and_the_cell_disappears() -> None:
    sim, frames = run(only(NECROSIS), 7, 36)
    last_seen: dict[int, int] = {}
    for f in frames:
        for c in f.cells:
            last_seen[c.track] = f.t
    gone = 0
    for death in sim.summary().deaths["Pos0"]:
        assert death.marker_t - death.onset_t <= 6  # fast: rupture within ~30 min
        if death.marker_t + 10 <= 35:
            assert last_seen[death.track] < 35, "a lysed necrotic cell must vanish"
            gone += 1
    assert gone >= 1


def test_mitosis_gives_two_new_daughters_and_ends_the_parent() -> None:
    p = dataclasses.replace(SMALL, mitosis_per_h=0.6, mean_cells_per_well=1.5)
    _sim, frames = run(p, 3, 30)
    by_pos: dict[str, list[SimFrame]] = defaultdict(list)
    for f in frames:
        by_pos[f.position].append(f)
    divisions = 0
    for position, series in by_pos.items():
        seen_tracks: set[int] = set()
        for prev, frame in zip([None, *series], series, strict=False):
            now = {c.track: c for c in frame.cells}
            children: dict[int, list[int]] = defaultdict(list)
            for child, parent in frame.parents.items():
                children[parent].append(child)
                assert child in now
                assert child not in seen_tracks, "daughters get new ids"
            for parent, kids in children.items():
                divisions += 1
                assert len(kids) == 2
                assert parent not in now, "the parent track ends at division"
                assert prev is not None
                mother = next(c for c in prev.cells if c.track == parent)
                assert {now[k].well for k in kids} == {mother.well}
                assert {now[k].cell_type for k in kids} == {mother.cell_type}
            born = set(now) - seen_tracks
            if prev is not None:
                assert born == set(frame.parents), f"{position} t={frame.t}: unexplained tracks"
            seen_tracks |= set(now)
    assert divisions >= 2


# ---------------------------------------------------------------- optics


def test_stage_drift_moves_wells_and_cells_together() -> None:
    still = dataclasses.replace(
        SMALL,
        positions=1,
        effector_fraction=0.0,
        target_speed_um_per_min=(0.0, 0.0),
        mitosis_per_h=0.0,
        spontaneous_death_per_h=0.0,
        focus_blur_px=(0.5, 0.5),
        stage_drift_step_px=2.5,
    )
    sim = NanowellSimulator(still, seed=4)
    first = sim.step()[0]
    moved = 0.0
    for t in range(1, 6):
        frame = sim.step()[0]
        dx, dy = sim.stage_offset_px("Pos0", t)
        assert frame.stage_offset_px == (dx, dy)  # what stage.csv gets
        assert abs(dx) <= still.stage_drift_max_px
        assert abs(dy) <= still.stage_drift_max_px
        moved = max(moved, abs(dx), abs(dy))
        (sx, sy), _ = cv2.phaseCorrelate(
            first.image.astype(np.float64), frame.image.astype(np.float64)
        )
        assert (sx, sy) == pytest.approx((dx, dy), abs=0.35), "the field did not shift rigidly"
        before = {c.track: c for c in first.cells}
        for c in frame.cells:
            b = before[c.track]
            assert c.x - b.x == pytest.approx(dx, abs=1.0)
            assert c.y - b.y == pytest.approx(dy, abs=1.0)
    assert moved > 1.0


def test_channels_add_fluorescence_without_changing_the_phase_image() -> None:
    plain = dataclasses.replace(only(APOPTOSIS), spontaneous_death_per_h=1.0)
    lit = dataclasses.replace(plain, channels=True)
    a, b = NanowellSimulator(plain, seed=8), NanowellSimulator(lit, seed=8)
    levels: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for _ in range(24):
        fa, fb = a.step()[0], b.step()[0]
        assert fb.axes == "CYX"
        assert fb.channels == CHANNELS
        assert fb.channels[0] == "phase"
        assert fb.image.shape == (5, 512, 512)
        assert fb.image.dtype == np.uint16
        np.testing.assert_array_equal(fa.image, fb.image[0])
        np.testing.assert_array_equal(fa.labels, fb.labels)
        markers = {d.track: d.marker_t for d in b.summary().deaths["Pos0"]}
        annexin = fb.image[CHANNELS.index("annexin_v")].astype(np.float64)
        floor = float(np.median(annexin))
        for c in fb.cells:
            levels[c.track].append((fb.t, float(np.median(annexin[fb.labels == c.track])) - floor))
        effector = fb.image[CHANNELS.index("effector_label")].astype(np.float64)
        target = fb.image[CHANNELS.index("target_label")].astype(np.float64)
        for c in fb.cells:
            inside = fb.labels == c.track
            if c.state == LIVE:
                mine, theirs = (effector, target) if c.cell_type == EFFECTOR else (target, effector)
                assert mine[inside].mean() > theirs[inside].mean() + 200
    # a cell lying on a stained one shows its stain too, so compare each cell with itself
    marked = 0
    live_levels = []
    for track, series in levels.items():
        marker = markers.get(track, 10**9)
        before = [v for t, v in series if t < marker]
        after = [v for t, v in series if t >= marker]
        live_levels.extend(before)
        if after:
            marked += 1
            assert min(after) > 300 + (np.median(before) if before else 0.0)
    assert marked >= 2
    assert abs(float(np.median(live_levels))) < 50, "Annexin V must be off before marker_t"


@pytest.mark.parametrize("pathway", [NECROPTOSIS, NECROSIS, APOPTOSIS])
def test_pi_marks_rupture_and_comes_late_in_apoptosis(pathway: str) -> None:
    p = dataclasses.replace(only(pathway), channels=True, spontaneous_death_per_h=1.0)
    sim = NanowellSimulator(p, seed=9)
    levels: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for _ in range(20):
        frame = sim.step()[0]
        pi = frame.image[CHANNELS.index("pi")].astype(np.float64)
        floor = float(np.median(pi))
        for c in frame.cells:
            # the median: a stained neighbour lying over or under a cell shows in its pixels
            levels[c.track].append((frame.t, float(np.median(pi[frame.labels == c.track])) - floor))
    deaths = sim.summary().deaths["Pos0"]
    assert deaths
    for death in deaths:
        series = levels[death.track]
        before = [v for t, v in series if t < death.marker_t]
        after = [v for t, v in series if t >= death.marker_t]
        assert max(before) < 150, "no PI before the marker"
        if pathway != APOPTOSIS and after:
            assert min(after) > 300, "PI at rupture"
        if pathway == APOPTOSIS:  # Annexin V first; PI only with secondary necrosis, later
            assert max(after, default=0.0) < 150


# ---------------------------------------------------------------- properties


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(
    seed=st.integers(0, 2**32 - 1),
    size_wells=st.sampled_from([(256, 1), (512, 2), (384, 1)]),
    max_cells=st.integers(0, 5),
    mean_cells=st.floats(0.0, 6.0),
    effector_fraction=st.floats(0.0, 1.0),
    drift=st.floats(0.0, 3.0),
    kill=st.floats(0.0, 20.0),
    mitosis=st.floats(0.0, 1.0),
)
def test_invariants_hold_for_any_seed_and_knobs(
    seed: int,
    size_wells: tuple[int, int],
    max_cells: int,
    mean_cells: float,
    effector_fraction: float,
    drift: float,
    kill: float,
    mitosis: float,
) -> None:
    size, wells = size_wells
    p = NanowellParams(
        frame_size_px=size,
        wells_per_side=wells,
        max_cells_per_well=max_cells,
        mean_cells_per_well=mean_cells,
        effector_fraction=effector_fraction,
        stage_drift_step_px=drift,
        kill_rate_per_contact_h=kill,
        mitosis_per_h=mitosis,
        spontaneous_death_per_h=0.2,
        seek_rate_per_h=10.0,
    )
    sim = NanowellSimulator(p, seed=seed)
    frames = []
    ended: set[int] = set()
    alive_before: set[int] = set()
    for _ in range(10):
        frame = sim.step()[0]
        frames.append(frame)
        check_frame(sim, frame)
        now = {c.track for c in frame.cells}
        assert not now & ended, "a track id was reused"
        ended |= alive_before - now
        alive_before = now
        if p.effector_fraction == 0.0:
            assert all(c.cell_type == TARGET for c in frame.cells)
    summary = sim.summary()
    hist = histories(frames)
    for death in summary.deaths["Pos0"]:
        assert death.marker_t > death.onset_t
        states = [s for t, s, _, _ in hist[("Pos0", death.track)] if t >= death.onset_t]
        assert set(states) <= {death.pathway}
    for c in summary.contacts["Pos0"]:
        assert c.track_a < c.track_b
        assert c.start_t <= c.end_t <= 9


def test_params_are_validated_naming_the_knob() -> None:
    with pytest.raises(ValueError, match="max_cells_per_well"):
        NanowellParams(max_cells_per_well=-1)
    with pytest.raises(ValueError, match="effector_speed_um_per_min"):
        NanowellParams(effector_speed_um_per_min=(10.0, 5.0))
    with pytest.raises(ValueError, match="wells_per_side"):
        NanowellParams(frame_size_px=512, wells_per_side=8)
    from_toml = NanowellParams(effector_speed_um_per_min=[4.0, 6.0])  # type: ignore[arg-type]
    assert from_toml.effector_speed_um_per_min == (4.0, 6.0)


# ---------------------------------------------------------------- acceptance 3


def test_live_vs_dead_is_not_trivially_separable() -> None:
    """A logistic regression on crop mean, sd and foreground area stays below 90 %."""
    p = NanowellParams(
        frame_size_px=512, wells_per_side=2, positions=2, spontaneous_death_per_h=0.1
    )
    score = nanowell_live_dead_baseline(p, seeds=(0, 1, 2), frames=40)
    assert 0.0 <= score < 0.9
