"""The holotomography simulator: truth against pixels, physics in range, biology in order.

Small fields (mostly 480 px x 8 slices) keep each case well under a second; the
full-size speed is measured by ``benchmarks/simulate.py``.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livecell.errors import ConfigError
from livecell.simulation.holotomo import HolotomoParams, HolotomoSimulator, patch_truth
from livecell.simulation.holotomo_cells import draw_cell, look_at
from livecell.simulation.params import load_params
from livecell.simulation.scene import (
    APOPTOSIS,
    CELL_STATES,
    DEFAULT_PATCH_SIZE_PX,
    EMPTY_PATCH,
    NECROPTOSIS,
    NECROSIS,
    PATCH_STATES,
    TARGET,
    SimFrame,
)

SMALL = HolotomoParams(size_px=480, z_slices=8, cells=6)
RI_RANGE = (1.32, 1.42)  # medium ~1.337 minus halos and noise; lipid droplets ~1.40 plus noise


@pytest.fixture(autouse=True)
def strict_numpy() -> Iterator[None]:
    with np.errstate(all="raise"):
        yield


def run(params: HolotomoParams, seed: int, frames: int) -> list[SimFrame]:
    sim = HolotomoSimulator(params, seed=seed)
    return [f for _ in range(frames) for f in sim.step()]


def check_truth(frame: SimFrame, params: HolotomoParams) -> None:
    """Every invariant of one frame's ground truth against its pixels."""
    size = params.size_px
    assert frame.labels.shape == (size, size)
    assert frame.labels.dtype == np.int32
    if params.mip:
        assert frame.axes == "YX"
        assert frame.image.shape == (size, size)
    else:
        assert frame.axes == "ZYX"
        assert frame.image.shape == (params.z_slices, size, size)
    assert frame.image.dtype == np.float32
    assert frame.channels == ()
    assert frame.pixel_size_um == params.pixel_size_um
    assert np.isfinite(frame.image).all()
    assert RI_RANGE[0] < float(frame.image.min())
    assert float(frame.image.max()) < RI_RANGE[1]
    # cells: one per label, area and centroid exactly those of the label pixels
    present = set(np.unique(frame.labels).tolist()) - {0}
    assert {c.track for c in frame.cells} == present
    assert len(frame.cells) == len(present)
    for cell in frame.cells:
        ys, xs = np.nonzero(frame.labels == cell.track)
        assert cell.area == xs.size
        assert cell.x == pytest.approx(xs.mean(), abs=1e-9)
        assert cell.y == pytest.approx(ys.mean(), abs=1e-9)
        assert cell.well == ""
        assert cell.cell_type == TARGET
        assert cell.state in CELL_STATES
    # patches: the full grid, empty exactly where no label pixel falls
    p = DEFAULT_PATCH_SIZE_PX
    rows = cols = size // p
    assert [(q.row, q.col) for q in frame.patches] == [
        (r, c) for r in range(rows) for c in range(cols)
    ]
    state_of = {c.track: c.state for c in frame.cells}
    for q in frame.patches:
        block = frame.labels[q.row * p : (q.row + 1) * p, q.col * p : (q.col + 1) * p]
        if not block.any():
            assert q.state == EMPTY_PATCH
            continue
        assert q.state in PATCH_STATES
        counts = np.bincount(block.ravel())
        counts[0] = 0
        owner = int(np.argmax(counts))
        live = state_of[owner] == "live"
        assert q.state in ("live_control", "live_treated") if live else q.state == state_of[owner]


def test_same_seed_same_frames_and_truth() -> None:
    a = run(SMALL, seed=4, frames=3)
    b = run(SMALL, seed=4, frames=3)
    for fa, fb in zip(a, b, strict=True):
        np.testing.assert_array_equal(fa.image, fb.image)
        np.testing.assert_array_equal(fa.labels, fb.labels)
        assert fa.cells == fb.cells
        assert fa.patches == fb.patches
    c = run(SMALL, seed=5, frames=1)
    assert not np.array_equal(a[0].image, c[0].image)


def test_truth_matches_pixels_over_time() -> None:
    params = dataclasses.replace(SMALL, onset_range_min=(-200.0, 60.0), positions=2)
    frames = run(params, seed=1, frames=6)
    assert {f.position for f in frames} == {"Pos0", "Pos1"}
    assert [f.t for f in frames] == [t for t in range(6) for _ in range(2)]
    for frame in frames:
        check_truth(frame, params)
        assert len(frame.cells) == 6  # nobody leaves the field or disappears under others


def test_refractive_index_is_physical() -> None:
    params = dataclasses.replace(SMALL, size_px=640, z_slices=16, cells=8, noise_ri=0.0)
    frame = run(params, seed=2, frames=1)[0]
    volume, fg = frame.image, frame.labels > 0
    top = volume[-1]  # the top slice is always medium
    assert abs(float(np.median(top)) - params.medium_ri) < 0.004
    mip = volume.max(axis=0)
    inside = mip[fg]
    assert 1.345 < float(np.median(inside)) < 1.375  # cytoplasm
    assert float(inside.max()) > 1.37  # nucleoli and lipid droplets
    assert float(np.median(mip[~fg])) < params.medium_ri + 0.003
    # cells sit on the glass: the slice just above it holds more RI than the top one
    glass = math.ceil(params.glass_z())
    assert float(volume[glass][fg].mean()) > float(top[fg].mean()) + 0.01


def test_mip_is_the_maximum_over_z_of_the_volume() -> None:
    volume = run(SMALL, seed=7, frames=2)
    mip = run(dataclasses.replace(SMALL, mip=True), seed=7, frames=2)
    for v, m in zip(volume, mip, strict=True):
        assert (v.axes, m.axes) == ("ZYX", "YX")
        np.testing.assert_array_equal(m.image, v.image.max(axis=0))
        np.testing.assert_array_equal(m.labels, v.labels)
        assert m.patches == v.patches


def dying(pathway_weights: tuple[float, float, float], **changes: object) -> HolotomoParams:
    """Every cell treated and dying by ``pathway_weights``, onsets in the first frames."""
    base = dataclasses.replace(
        SMALL,
        treated_fraction=1.0,
        death_fraction=1.0,
        pathway_weights=pathway_weights,
        onset_range_min=(0.0, 30.0),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_necroptosis_ri_falls_frames_before_the_pi_marker() -> None:
    params = dying((0.0, 1.0, 0.0), noise_ri=0.0, cells=4)
    sim = HolotomoSimulator(params, seed=3)
    frames = [sim.step()[0] for _ in range(16)]
    deaths = sim.summary().deaths["Pos0"]
    assert len(deaths) == 4
    for death in deaths:
        assert death.pathway == NECROPTOSIS
        assert death.well == ""
        # 2 to 4 h at 10 min per frame
        assert 12 <= death.marker_t - death.onset_t <= 25

        def cell_ri(t: int, track: int = death.track) -> float:
            f = frames[t]
            mip = f.image.max(axis=0)
            return float(mip[f.labels == track].mean())

        midway = (death.onset_t + death.marker_t) // 2
        assert cell_ri(midway) < cell_ri(death.onset_t) - 0.0015  # measurable hours before PI


def test_states_only_move_forward_and_match_the_deaths() -> None:
    params = dataclasses.replace(
        SMALL, treated_fraction=1.0, death_fraction=0.8, onset_range_min=(0.0, 80.0), cells=8
    )
    sim = HolotomoSimulator(params, seed=11)
    history: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for t in range(10):
        for cell in sim.step()[0].cells:
            history[cell.track].append((t, cell.state))
    deaths = {d.track: d for d in sim.summary().deaths["Pos0"]}
    assert {d.pathway for d in deaths.values()} <= {APOPTOSIS, NECROPTOSIS, NECROSIS}
    assert deaths, "no deaths at all"
    for track, states in history.items():
        assert [t for t, _ in states] == list(range(10))
        first_dead = next((t for t, s in states if s != "live"), None)
        if first_dead is None:
            assert track not in deaths
            continue
        assert {s for t, s in states if t >= first_dead} == {deaths[track].pathway}  # stays dead
        assert first_dead == deaths[track].onset_t
        assert deaths[track].marker_t > deaths[track].onset_t


def test_pathways_change_cells_the_way_they_should() -> None:
    """The time courses themselves (pure functions of the minutes since onset)."""
    rng = np.random.default_rng(0)
    params = dying((1.0, 0.0, 0.0))
    cell = draw_cell(rng, 1, 100.0, 100.0, 90.0, params)
    before, early, late = (look_at(cell, cell.onset_min + m) for m in (-1.0, 30.0, 600.0))
    assert before.state == "live_treated"
    assert early.state == late.state == APOPTOSIS
    assert late.radius_scale < early.radius_scale < before.radius_scale  # shrinkage
    assert late.cytoplasm_delta_ri > before.cytoplasm_delta_ri  # condensation
    assert late.fragment == 1.0  # apoptotic bodies

    cell = draw_cell(rng, 2, 100.0, 100.0, 90.0, dying((0.0, 1.0, 0.0)))
    lead = cell.marker_min - cell.onset_min
    before, mid, ruptured = (
        look_at(cell, cell.onset_min + m) for m in (-1.0, lead / 2, lead + 300)
    )
    assert mid.state == NECROPTOSIS
    assert ruptured.cytoplasm_delta_ri < mid.cytoplasm_delta_ri < before.cytoplasm_delta_ri
    assert mid.radius_scale > before.radius_scale  # swelling
    assert mid.ragged == 0.0 < ruptured.ragged  # the membrane holds until PI

    cell = draw_cell(rng, 3, 100.0, 100.0, 90.0, dying((0.0, 0.0, 1.0)))
    lysis = cell.marker_min - cell.onset_min
    assert lysis <= 45.0  # fast
    before, lysed = look_at(cell, cell.onset_min - 1), look_at(cell, cell.onset_min + lysis + 200)
    assert lysed.cytoplasm_delta_ri < 0.5 * before.cytoplasm_delta_ri  # towards the medium
    assert lysed.radius_scale > 1.2 * before.radius_scale

    control = draw_cell(rng, 4, 100.0, 100.0, 90.0, dataclasses.replace(SMALL, treated_fraction=0))
    assert look_at(control, 1e6).state == "live_control"


def test_crowded_field_keeps_every_cell_visible() -> None:
    params = dataclasses.replace(SMALL, size_px=320, cells=14)
    for frame in run(params, seed=9, frames=4):
        check_truth(frame, params)
        assert len(frame.cells) == 14


def test_default_density_scales_with_the_field() -> None:
    assert HolotomoParams().cells_per_position() == 47  # ~150 cells in 588 um at 0.16 um/px
    assert HolotomoParams(size_px=3675).cells_per_position() == 150
    assert HolotomoParams(cells=5).cells_per_position() == 5


def test_summary_has_no_wells_or_contacts_and_only_begun_deaths() -> None:
    params = dying((1.0, 1.0, 1.0), onset_range_min=(0.0, 600.0), cells=10)
    sim = HolotomoSimulator(params, seed=2)
    assert sim.summary().deaths == {"Pos0": ()}
    for _ in range(5):
        sim.step()
    summary = sim.summary()
    assert summary.wells == {}
    assert summary.contacts == {}
    assert all(d.onset_t <= 4 for d in summary.deaths["Pos0"])


def test_patch_rule_picks_the_cell_with_most_pixels() -> None:
    labels = np.zeros((320, 480), np.int32)
    labels[:100, :160] = 1
    labels[100:160, :160] = 2
    labels[0, 160] = 3  # a single pixel makes the patch non-empty
    labels[200:, 320:] = 4
    labels[160:200, 320:] = 5  # 40 rows of 5 against 120 rows of 4
    states = {1: "apoptosis", 2: "necrosis", 3: "live_control", 4: "live_treated", 5: "necrosis"}
    got = {(p.row, p.col): p.state for p in patch_truth(labels, states)}
    assert got == {
        (0, 0): "apoptosis",
        (0, 1): "live_control",
        (0, 2): EMPTY_PATCH,
        (1, 0): EMPTY_PATCH,
        (1, 1): EMPTY_PATCH,
        (1, 2): "live_treated",
    }


def test_bad_parameters_are_named() -> None:
    for field, value in (
        ("size_px", 8),
        ("z_slices", 2),
        ("treated_fraction", 1.5),
        ("pathway_weights", (0.0, 0.0, 0.0)),
        ("radius_um", (5.0, 1.0)),
        ("noise_ri", -1.0),
    ):
        with pytest.raises(ValueError, match=field):
            HolotomoParams(**{field: value})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cels"):
        load_params(HolotomoParams, None, {"cels": 3})
    params = load_params(HolotomoParams, None, {"onset_range_min": [-60, 0], "mip": True})
    assert params.onset_range_min == (-60.0, 0.0)
    assert params.mip


def test_onsets_before_the_first_frame_are_recorded_at_frame_zero() -> None:
    params = dying((1.0, 1.0, 1.0), onset_range_min=(-600.0, -300.0))
    sim = HolotomoSimulator(params, seed=5)
    first = sim.step()[0]
    assert all(c.state != "live" for c in first.cells)
    assert all(d.onset_t == 0 for d in sim.summary().deaths["Pos0"])


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(32, 360),
    z=st.integers(4, 12),
    cells=st.integers(0, 10),
    positions=st.integers(1, 2),
    mip=st.booleans(),
    interval=st.floats(1.0, 120.0),
    onset=st.floats(-600.0, 600.0),
)
def test_truth_invariants_hold_for_any_seed_and_field(
    seed: int,
    size: int,
    z: int,
    cells: int,
    positions: int,
    mip: bool,
    interval: float,
    onset: float,
) -> None:
    params = HolotomoParams(
        size_px=size,
        z_slices=z,
        cells=cells,
        cell_density_per_mm2=0.0,
        positions=positions,
        mip=mip,
        frame_interval_min=interval,
        onset_range_min=(onset, onset + 120.0),
    )
    sim = HolotomoSimulator(params, seed=seed)
    for t in range(2):
        frames = sim.step()
        assert [f.position for f in frames] == [f"Pos{i}" for i in range(positions)]
        for frame in frames:
            assert frame.t == t
            check_truth(frame, params)
            assert len(frame.cells) == cells
    for deaths in sim.summary().deaths.values():
        for d in deaths:
            assert 0 <= d.onset_t <= 1
            assert d.marker_t >= d.onset_t


def test_patch_baseline_runs_and_is_far_from_perfect() -> None:
    """Acceptance 3 in miniature (the reported number: ``python -m
    livecell.simulation.baseline_holotomo``)."""
    pytest.importorskip("sklearn")
    from livecell.simulation.baseline_holotomo import (
        BASELINE_PARAMS,
        holotomo_patch_baseline,
        mip_patch_features,
        otsu_threshold,
    )

    mip = np.full((320, 320), 1.337, np.float32)
    mip[:160, :80] = 1.36
    assert 1.337 <= otsu_threshold(mip) < 1.36
    features = mip_patch_features(mip)
    assert features.shape == (4, 3)
    assert features[0, 2] == pytest.approx(0.5)  # half the first patch is foreground
    assert features[3, 2] == 0.0
    small = dataclasses.replace(BASELINE_PARAMS, size_px=480, z_slices=8)
    with np.errstate(all="warn"):  # scikit-learn's own arithmetic is not ours to police
        score = holotomo_patch_baseline((0, 1, 2), frames=8, params=small)
    assert 0.0 <= score < 0.9
