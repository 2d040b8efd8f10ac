"""The well lattice of nanowell mode, scored on real simulated acquisitions.

Acquisitions are written by the simulator's own writer (``run_simulation``) into
a temporary folder and read back frame by frame as the daemon would; boxes are
scored against ``ground_truth/wells.csv`` moved by the simulator's exact stage
offset of each frame (``wells.csv`` holds the boxes at t = 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livecell.analysis.wells import (
    Well,
    WellLattice,
    fit_lattice,
    lattice_offset,
    track_drift,
)
from livecell.simulation.nanowell import NanowellSimulator
from livecell.simulation.nanowell_params import NanowellParams
from livecell.simulation.run import RunOptions, run_simulation
from livecell.training.datasets import read_frame

Box = tuple[float, float, float, float]


@pytest.fixture(autouse=True)
def _strict_numpy() -> Iterator[None]:
    old = np.seterr(all="raise")
    yield
    np.seterr(**old)


@dataclass(frozen=True)
class Acquisition:
    root: Path
    params: NanowellParams
    frames: int
    truth: pd.DataFrame
    offsets: dict[str, list[tuple[float, float]]]  # position -> (dx, dy) per frame

    @property
    def positions(self) -> list[str]:
        return sorted(self.offsets)

    def image(self, position: str, t: int) -> np.ndarray:
        return read_frame(self.root / "frames" / position / f"t{t:05d}.ome.tif")[0]


def _simulate(root: Path, params: NanowellParams, *, frames: int, seed: int) -> Acquisition:
    sim = NanowellSimulator(params, seed=seed)
    with np.errstate(
        all="warn", under="ignore"
    ):  # numpy's defaults: the simulator is not under test
        run_simulation(sim, root, RunOptions(frames=frames, progress=False))
    offsets = {p: [sim.stage_offset_px(p, t) for t in range(frames)] for p in sim.positions}
    truth = pd.read_csv(root / "ground_truth" / "wells.csv")
    return Acquisition(root, params, frames, truth, offsets)


@pytest.fixture(scope="module")
def steady(tmp_path_factory: pytest.TempPathFactory) -> Acquisition:
    """Default chip and stage (drift up to 10 px), two positions."""
    params = NanowellParams(frame_size_px=1024, wells_per_side=4, positions=2)
    return _simulate(tmp_path_factory.mktemp("steady"), params, frames=6, seed=1)


@pytest.fixture(scope="module")
def drifting(tmp_path_factory: pytest.TempPathFactory) -> Acquisition:
    """Strong stage drift (steps of 6 px, up to 30 px) and lattices shifted by up to
    100 px, so frame edges cut wells."""
    params = NanowellParams(
        frame_size_px=1024,
        wells_per_side=4,
        positions=3,
        stage_drift_step_px=6.0,
        stage_drift_max_px=30.0,
        lattice_offset_max_px=100.0,
    )
    return _simulate(tmp_path_factory.mktemp("drifting"), params, frames=10, seed=5)


def _iou(a: Box, b: Box) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _box(w: Well) -> Box:
    return (w.x0, w.y0, w.x1, w.y1)


@dataclass(frozen=True)
class Score:
    found: int  # ground-truth wells matched by id with IoU > 0.8
    total: int
    mean_iou: float
    untracked_mean_iou: float  # the same with the t = 0 boxes, drift ignored
    extra: int  # wells reported that wells.csv does not have
    worst_frame: float  # the lowest per-frame fraction found
    max_drift_error_px: float


def _score(acq: Acquisition) -> Score:
    margin = acq.params.stage_drift_max_px  # the simulator's rule for which wells count
    found = total = extra = 0
    ious: list[float] = []
    untracked: list[float] = []
    worst, drift_error = 1.0, 0.0
    for position in acq.positions:
        lattice = WellLattice(edge_margin_px=margin)
        truth = acq.truth[acq.truth.position == position]
        for t in range(acq.frames):
            wells = {w.well: w for w in lattice.update(acq.image(position, t), t)}
            dx, dy = acq.offsets[position][t]
            drift_error = max(
                drift_error, abs(lattice.offset_px[0] - dx), abs(lattice.offset_px[1] - dy)
            )
            hits = 0
            for row in truth.itertuples():
                moved = (row.x0 + dx, row.y0 + dy, row.x1 + dx, row.y1 + dy)
                well = wells.get(row.well)
                iou = _iou(moved, _box(well)) if well is not None else 0.0
                if well is not None:
                    assert (well.row, well.col) == (row.row, row.col)
                ious.append(iou)
                untracked.append(_iou(moved, (row.x0, row.y0, row.x1, row.y1)))
                hits += iou > 0.8
            found += hits
            total += len(truth)
            extra += len(set(wells) - set(truth.well))
            worst = min(worst, hits / len(truth))
    return Score(
        found,
        total,
        float(np.mean(ious)),
        float(np.mean(untracked)),
        extra,
        worst,
        drift_error,
    )


@pytest.mark.parametrize("name", ["steady", "drifting"])
def test_wells_found_on_every_frame(name: str, request: pytest.FixtureRequest) -> None:
    acq: Acquisition = request.getfixturevalue(name)
    score = _score(acq)
    assert score.total > 0
    assert score.worst_frame >= 0.99, score
    assert score.found >= 0.99 * score.total, score
    assert score.extra == 0, score
    assert score.mean_iou > 0.97, score
    assert score.max_drift_error_px < 0.1, score


def test_drift_is_followed_not_ignored(drifting: Acquisition) -> None:
    """The drifting acquisition really drifts, and following it beats the t = 0 boxes."""
    largest = max(abs(v) for offs in drifting.offsets.values() for xy in offs for v in xy)
    assert largest > 10.0
    score = _score(drifting)
    assert score.mean_iou > score.untracked_mean_iou + 0.05, score


def test_ids_and_boxes_match_wells_csv_at_t0(drifting: Acquisition) -> None:
    for position in drifting.positions:
        image = drifting.image(position, 0)
        wells = WellLattice(edge_margin_px=drifting.params.stage_drift_max_px).update(image, 0)
        truth = drifting.truth[drifting.truth.position == position]
        assert [w.well for w in wells] == list(truth.well)
        for well, row in zip(wells, truth.itertuples(), strict=True):
            assert (well.row, well.col) == (row.row, row.col)
            assert np.allclose(_box(well), (row.x0, row.y0, row.x1, row.y1), atol=1)


def test_partial_wells_are_skipped(drifting: Acquisition) -> None:
    size = drifting.params.frame_size_px
    cut = 0
    for position in drifting.positions:
        lattice = WellLattice()
        for t in range(drifting.frames):
            wells = lattice.update(drifting.image(position, t), t)
            for w in wells:
                assert 0 <= w.x0 < w.x1 <= size
                assert 0 <= w.y0 < w.y1 <= size
            for x0, y0, x1, y1 in lattice.skipped:
                assert min(x0, y0) < 0 or max(x1, y1) > size  # the frame edge cuts it
            cut += len(lattice.skipped)
    assert cut > 0  # lattices shifted by up to 100 px leave wells cut by the edge


def test_lattice_geometry(steady: Acquisition) -> None:
    p = steady.params
    lattice = fit_lattice(steady.image("Pos0", 0))
    assert np.allclose(lattice.pitch_px, p.pitch_px, atol=0.05)
    assert np.allclose(lattice.well_size_px, p.pitch_px - p.wall_px, atol=1.0)
    layout = lattice.layout(steady.image("Pos0", 0).shape)
    assert len(layout.wells) == p.wells_per_side**2


def test_lattice_offset_matches_stage(steady: Acquisition) -> None:
    lattice = fit_lattice(steady.image("Pos1", 0))
    prior = (0.0, 0.0)
    for t in range(1, steady.frames):
        prior = lattice_offset(lattice, steady.image("Pos1", t), prior_px=prior)
        assert np.allclose(prior, steady.offsets["Pos1"][t], atol=0.1)


# ---------------------------------------------------------------- track_drift


def _periodic_pair(
    seed: int, pitch_px: float, wall_px: float, shift_px: tuple[float, float], size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """A wall grid with cell-like texture, and the same shifted by ``shift_px`` (dx, dy).

    The shift is a Fourier phase ramp, exact for this band-limited scene (no
    interpolation blur), so the only error left is the estimator's.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size].astype(np.float64)
    walls = ((x % pitch_px) < wall_px) | ((y % pitch_px) < wall_px)
    scene = walls.astype(np.float64) + 0.3 * cv2.GaussianBlur(
        rng.standard_normal((size, size)), (0, 0), 3.0
    )
    scene = cv2.GaussianBlur(scene, (0, 0), 1.5)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    ramp = np.exp(-2j * np.pi * (fx * shift_px[0] + fy * shift_px[1]))
    moved = np.fft.ifft2(np.fft.fft2(scene) * ramp).real
    return (scene + 10.0).astype(np.float32), (moved + 10.0).astype(np.float32)


# hundredths of a pixel: subnormal shifts would only test numpy's underflow
_SHIFT_PX = st.integers(-800, 800).map(lambda v: v / 100)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    pitch_px=st.floats(24.0, 64.0),
    wall_px=st.floats(3.0, 8.0),
    dx=_SHIFT_PX,
    dy=_SHIFT_PX,
)
def test_track_drift_recovers_shift(
    seed: int, pitch_px: float, wall_px: float, dx: float, dy: float
) -> None:
    reference, moved = _periodic_pair(seed, pitch_px, wall_px, (dx, dy))
    got = track_drift(reference, moved)
    assert abs(got[0] - dx) < 0.2
    assert abs(got[1] - dy) < 0.2


# ---------------------------------------------------------------- bad input


def test_blank_image_is_refused() -> None:
    with pytest.raises(ValueError, match="blank"):
        fit_lattice(np.full((512, 512), 100.0))
    with pytest.raises(ValueError, match="blank"):
        track_drift(np.full((256, 256), 1.0), np.ones((256, 256)))
    with pytest.raises(ValueError, match="blank"):
        WellLattice().update(np.zeros((512, 512), np.uint16), 0)


def test_noise_has_no_lattice() -> None:
    noise = np.random.default_rng(0).normal(100.0, 5.0, (512, 512))
    with pytest.raises(ValueError, match="no periodic wall pattern"):
        fit_lattice(noise)


def test_shapes_are_checked(steady: Acquisition) -> None:
    with pytest.raises(ValueError, match="2D"):
        fit_lattice(np.ones((3, 64, 64)))
    with pytest.raises(ValueError, match="shapes differ"):
        track_drift(np.ones((64, 64)), np.ones((64, 96)))
    lattice = WellLattice()
    image = steady.image("Pos0", 0)
    lattice.update(image, 0)
    with pytest.raises(ValueError, match="first frame"):
        lattice.update(image[:512, :512], 1)
