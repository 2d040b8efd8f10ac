"""The tracking benchmark (issue 5): smoothing speed, tracker accuracy and tracker scale.

Sections (``--sections``, default ``smoothing``; ``all`` runs every one):

- ``smoothing``: for tracks of several lengths with 20 % of frames missing, times
  :func:`livecell.tracking.smoothing.smooth_track` (a pentadiagonal solve) against the
  same QP stated in CVXPY and solved by Clarabel and OSQP, in the same process, and
  checks that they agree.
- ``truth``: the per-well tracker on the simulator's ground-truth masks: each well's
  TRA labels cropped per frame (``wells.csv`` boxes; cells stay inside them whatever the
  stage drift), one :class:`~livecell.tracking.nanowell.NanowellTracker` per well, a
  tracks file written and scored by :func:`livecell.evaluation.scoring.evaluate`; MOTA
  and IDF1 by cells-per-well group (1-2 and 3-5). Folders from ``--truth-masks``, or
  nanowell acquisitions simulated for ``--seeds`` (default 81 82 83).
- ``laptrack``: laptrack (LAP linking with gap closing and splitting) on the same
  centroids, well by well, scored the same way, with its time beside livecell's.
- ``scale``: a synthetic chip of N wells x 3 moving cells per frame, one core: time per
  frame for the whole chip from observations (split of a whole frame's measurements by
  well box + every well's update), and from a label image (measurement and contacts
  included), for 500 to 50,000 wells.

Run as ``python benchmarks/tracking.py`` or ``livecell bench tracking``.
"""

from __future__ import annotations

import argparse
import csv
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from livecell.argtypes import at_least_one, existing_dir, non_negative, non_negative_float
from livecell.bench._timing import call_seconds
from livecell.sinks.tracks_csv import TrackRow, TracksFile
from livecell.tracking.nanowell import NanowellTracker, TrackerParams, track_rows
from livecell.tracking.observations import (
    Observations,
    assign_to_boxes,
    measure,
    split_by_box,
    touching_pairs,
)
from livecell.tracking.smoothing import smooth_track

_RATIO_TARGET = 100.0
_SECTIONS = ("smoothing", "truth", "laptrack", "scale")
_GROUPS = ((1, 2), (3, 5))
_MOTA_TARGETS = {(1, 2): 0.99, (3, 5): 0.97}
_SCALE_TARGET_S = 0.2
_WELL_ID_STRIDE = 1000  # global track id = well index * stride + local id
_LAPTRACK_LINK_PX = 150.0  # effectors step up to ~100 px a frame in the simulator


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/tracking.py",
        description="Tracking: smoothing vs CVXPY, the tracker on ground-truth masks "
        "(and laptrack), and the tracker's scale.",
    )
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=[*_SECTIONS, "all"],
        default=["smoothing"],
        help="what to run (default: smoothing)",
    )
    parser.add_argument(
        "--lengths",
        type=at_least_one,
        nargs="+",
        default=[72, 288, 1000],
        help="track lengths (frames)",
    )
    parser.add_argument("--lam", type=non_negative_float, default=10.0, help="curvature weight")
    parser.add_argument(
        "--repeats", type=at_least_one, default=5, help="timed calls per cell (median)"
    )
    parser.add_argument(
        "--truth-masks",
        type=existing_dir,
        nargs="+",
        default=None,
        metavar="OUT",
        help="simulated nanowell folders (OUT/ground_truth) for truth and laptrack",
    )
    parser.add_argument(
        "--seeds", type=non_negative, nargs="+", default=[81, 82, 83], help="seeds to simulate"
    )
    parser.add_argument("--frames", type=at_least_one, default=40, help="frames to simulate")
    parser.add_argument(
        "--wells",
        type=at_least_one,
        nargs="+",
        default=[500, 5000, 50000],
        help="chip sizes for the scale section",
    )
    parser.add_argument(
        "--scale-frames", type=at_least_one, default=5, help="timed frames per chip size (median)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sections = _SECTIONS if "all" in args.sections else tuple(args.sections)
    print(f"livecell tracking benchmark: Python {platform.python_version()}, one core")
    status = 0
    if "smoothing" in sections:
        status |= _smoothing(args)
    folders: list[Path] = []
    if "truth" in sections or "laptrack" in sections:
        with tempfile.TemporaryDirectory(prefix="livecell-bench-tracking-") as tmp:
            folders = list(args.truth_masks or _simulate(Path(tmp), args.seeds, args.frames))
            if "truth" in sections:
                status |= _truth_section(folders)
            if "laptrack" in sections:
                status |= _laptrack_section(folders)
    if "scale" in sections:
        status |= _scale_section(args.wells, args.scale_frames)
    return status


# --- smoothing ----------------------------------------------------------------------------


def _median_seconds(call: Callable[[], object], repeats: int) -> float:
    return float(np.median(call_seconds(call, repeats)))


def _track(length: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    path = np.cumsum(rng.normal(0.0, 3.0, (length, 2)), axis=0) + rng.normal(0, 1, (length, 2))
    gaps = rng.random(length) < 0.2
    gaps[[0, -1]] = False
    path[gaps] = np.nan
    return path


def _cvxpy_problem(track: np.ndarray, lam: float) -> tuple[Any, Any]:
    cp: Any = import_module("cvxpy")  # partly typed; the reference only

    measured = ~np.isnan(track).any(axis=1)
    x = cp.Variable(track.shape)
    objective = cp.sum_squares(x[measured] - track[measured]) + lam * cp.sum_squares(
        x[2:] - 2 * x[1:-1] + x[:-2]
    )
    return cp.Problem(cp.Minimize(objective)), x


def _solve_built(problem: Any, x: Any, solver: str) -> Callable[[], np.ndarray]:
    def solve() -> np.ndarray:
        problem.solve(solver=solver)
        return np.asarray(x.value)

    return solve


def _build_and_solve(track: np.ndarray, lam: float, solver: str) -> Callable[[], np.ndarray]:
    def solve() -> np.ndarray:
        problem, x = _cvxpy_problem(track, lam)
        return _solve_built(problem, x, solver)()

    return solve


def _smoothing(args: argparse.Namespace) -> int:
    try:
        import cvxpy  # noqa: F401
    except ImportError:
        print("the reference needs cvxpy: pip install -e '.[dev]'")
        return 1
    print(f"convex smoothing, 2-D tracks, 20 % of frames missing, lambda {args.lam}")
    print(
        f"{'frames':>7}{'banded ms':>11}{'solver':>10}{'per call ms':>13}{'speed-up':>10}"
        f"{'reused ms':>11}{'speed-up':>10}{'max diff':>10}"
    )
    worst_ratio = np.inf
    for length in args.lengths:
        track = _track(length)
        ours = _median_seconds(lambda: smooth_track(track, args.lam), args.repeats)  # noqa: B023
        expected = smooth_track(track, args.lam)
        for solver in ("CLARABEL", "OSQP"):
            per_call = _median_seconds(_build_and_solve(track, args.lam, solver), args.repeats)
            problem, x = _cvxpy_problem(track, args.lam)
            solve = _solve_built(problem, x, solver)
            diff = float(np.max(np.abs(solve() - expected)))
            reused = _median_seconds(solve, args.repeats)
            worst_ratio = min(worst_ratio, per_call / ours)
            print(
                f"{length:>7}{ours * 1e3:>11.3f}{solver:>10}{per_call * 1e3:>13.2f}"
                f"{per_call / ours:>9.0f}x{reused * 1e3:>11.2f}{reused / ours:>9.0f}x{diff:>10.1e}"
            )
    verdict = "met" if worst_ratio >= _RATIO_TARGET else "MISSED"
    print(
        f"slowest speed-up per call {worst_ratio:.0f}x (target >= {_RATIO_TARGET:.0f}x: {verdict})"
    )
    print(
        "per call: the problem built and solved for each track, as seed 003 did; reused: "
        "only the solve of an already built problem (a lower bound for CVXPY)."
    )
    return 0


# --- ground-truth masks -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Well:
    position: str
    name: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


def _simulate(folder: Path, seeds: Sequence[int], frames: int) -> list[Path]:
    out = []
    for seed in seeds:
        target = folder / f"seed{seed}"
        subprocess.run(
            [
                *(sys.executable, "-m", "livecell", "simulate", str(target)),
                *("--kind", "nanowell", "--frames", str(frames), "--interval", "0"),
                *("--seed", str(seed)),
            ],
            check=True,
            capture_output=True,
        )
        out.append(target)
    return out


def read_wells(ground_truth: Path) -> list[Well]:
    """The wells of ``ground_truth/wells.csv``, in file order."""
    with (ground_truth / "wells.csv").open(newline="") as f:
        return [
            Well(r["position"], r["well"], (int(r["x0"]), int(r["y0"]), int(r["x1"]), int(r["y1"])))
            for r in csv.DictReader(f)
        ]


def read_tra_frames(ground_truth: Path, position: str) -> list[npt.NDArray[np.integer]]:
    """The ground-truth TRA label images of one position, in frame order."""
    import tifffile

    paths = sorted((ground_truth / position / "TRA").glob("man_track*.tif"))
    return [np.asarray(tifffile.imread(p)) for p in paths]


def read_frame_images(ground_truth: Path, position: str) -> list[npt.NDArray[np.number]] | None:
    """The simulated frames (``../frames/<position>/t*.ome.tif`` beside ``ground_truth``),
    2-D, in frame order; ``None`` where the folder holds none."""
    import tifffile

    paths = sorted((ground_truth.parent / "frames" / position).glob("t*.tif"))
    if not paths:
        return None
    images = []
    for path in paths:
        pixels = np.asarray(tifffile.imread(path))
        while pixels.ndim > 2:  # channel 0, maximum over Z, as the daemon reads a frame
            pixels = pixels.max(axis=0) if pixels.ndim == 3 else pixels[0]
        images.append(pixels)
    return images


def track_truth_masks(
    ground_truth: Path,
    params: TrackerParams = TrackerParams(),  # noqa: B008 (frozen)
    *,
    appearance: bool = True,
) -> tuple[list[TrackRow], float]:
    """Track every well of a simulated acquisition on its ground-truth masks.

    With ``appearance`` the frame images beside the masks (:func:`read_frame_images`)
    are read and each well's crop given to the tracker, as the daemon does. Returns the
    tracks-file rows (global ids ``well index * 1000 + local id``) and the seconds spent
    in the trackers (reading the masks and images excluded).
    """
    wells = read_wells(ground_truth)
    rows: list[TrackRow] = []
    seconds = 0.0
    for position in sorted({w.position for w in wells}):
        frames = read_tra_frames(ground_truth, position)
        images = read_frame_images(ground_truth, position) if appearance else None
        if images is not None and len(images) != len(frames):
            raise ValueError(f"{ground_truth}: {len(images)} frames but {len(frames)} masks")
        here = [(i, w) for i, w in enumerate(wells) if w.position == position]
        for index, well in here:
            x0, y0, x1, y1 = well.box
            tracker = NanowellTracker(params)
            started = time.perf_counter()
            updates = [
                tracker.update(
                    frame[y0:y1, x0:x1], t, None if images is None else images[t][y0:y1, x0:x1]
                )
                for t, frame in enumerate(frames)
            ]
            seconds += time.perf_counter() - started
            rows += [
                TrackRow(
                    position,
                    row.t,
                    index * _WELL_ID_STRIDE + row.track,
                    well.name,
                    row.x + x0,
                    row.y + y0,
                    row.area_px,
                    cell_type="",
                    state="",
                )
                for row in track_rows(updates)
            ]
    return rows, seconds


def write_tracks(path: Path, rows: Sequence[TrackRow]) -> None:
    """The rows as the daemon's tracks file (a new file)."""
    path.unlink(missing_ok=True)
    out = TracksFile(path)
    out.write(rows)
    out.close()


@dataclass(frozen=True, slots=True)
class GroupScores:
    cells: tuple[int, int]
    wells: int
    objects: int
    mota: float
    idf1: float
    switches: int


def score_tracks(ground_truth: Path, tracks_file: Path) -> list[GroupScores]:
    """MOTA and IDF1 of a tracks file by cells-per-well group (livecell's evaluation)."""
    from livecell.evaluation.scoring import evaluate
    from livecell.evaluation.tracking import combine

    report = evaluate(ground_truth, tracks=tracks_file)
    if report.tracking is None:
        raise RuntimeError(f"{tracks_file}: tracking was not scored")
    out = []
    for lo, hi in _GROUPS:
        parts = [b.scores for b in report.tracking.by_cells if lo <= b.cells <= hi]
        if not parts:
            continue
        s = combine(parts)
        out.append(GroupScores((lo, hi), s.wells, s.num_objects, s.mota, s.idf1, s.num_switches))
    return out


def _print_groups(name: str, groups: Sequence[GroupScores], seconds: float) -> bool:
    met = True
    for g in groups:
        target = _MOTA_TARGETS[g.cells]
        ok = g.mota >= target
        met &= ok
        print(
            f"{name:>10}{f'{g.cells[0]}-{g.cells[1]}':>8}{g.wells:>7}{g.objects:>9}"
            f"{g.mota:>8.4f}{g.idf1:>8.4f}{g.switches:>10}{seconds:>9.2f}"
            f"   >= {target} {'met' if ok else 'MISSED'}"
        )
    return met


def _truth_header(title: str) -> None:
    print(title)
    print(
        f"{'tracker':>10}{'cells':>8}{'wells':>7}{'objects':>9}{'MOTA':>8}{'IDF1':>8}"
        f"{'switches':>10}{'track s':>9}"
    )


def _merge_groups(parts: Sequence[Sequence[GroupScores]]) -> list[GroupScores]:
    out = []
    for cells in _GROUPS:
        found = [g for groups in parts for g in groups if g.cells == cells]
        if not found:
            continue
        objects = sum(g.objects for g in found)
        out.append(
            GroupScores(
                cells,
                sum(g.wells for g in found),
                objects,
                sum(g.mota * g.objects for g in found) / max(objects, 1),
                sum(g.idf1 * g.objects for g in found) / max(objects, 1),
                sum(g.switches for g in found),
            )
        )
    return out


def _score_on_truth(
    folders: Sequence[Path],
    tracker_rows: Callable[[Path], tuple[list[TrackRow], float]],
    *,
    echo: bool,
) -> tuple[list[GroupScores], float]:
    """Track each acquisition's ground-truth masks with ``tracker_rows``; score with livecell's
    evaluation. Returns the groups merged over acquisitions and the seconds spent tracking."""
    parts = []
    total = 0.0
    with tempfile.TemporaryDirectory(prefix="livecell-tracks-") as tmp:
        for folder in folders:
            rows, seconds = tracker_rows(folder / "ground_truth")
            total += seconds
            path = Path(tmp) / f"{folder.name}.csv"
            write_tracks(path, rows)
            groups = score_tracks(folder / "ground_truth", path)
            parts.append(groups)
            for g in groups if echo else ():
                print(
                    f"  {folder.name}: {g.cells[0]}-{g.cells[1]} cells/well: MOTA {g.mota:.4f} "
                    f"IDF1 {g.idf1:.4f} ({g.wells} wells, {g.switches} switches)"
                )
    return _merge_groups(parts), total


def _truth_section(folders: Sequence[Path]) -> int:
    _truth_header(
        "per-well tracker on ground-truth masks (TRA labels cropped by well), "
        f"{len(folders)} acquisition(s); MOTA pooled over objects"
    )
    groups, total = _score_on_truth(folders, track_truth_masks, echo=True)
    met = _print_groups("livecell", groups, total)
    print("track s: seconds in the trackers (masks read beforehand), all acquisitions")
    return 0 if met else 1


# --- laptrack -----------------------------------------------------------------------------


def _laptrack_rows(ground_truth: Path) -> tuple[list[TrackRow], float]:
    pd: Any = import_module("pandas")
    laptrack: Any = import_module("laptrack")
    wells = read_wells(ground_truth)
    rows: list[TrackRow] = []
    seconds = 0.0
    tracker = laptrack.LapTrack(
        cutoff=_LAPTRACK_LINK_PX**2,
        gap_closing_cutoff=_LAPTRACK_LINK_PX**2,
        gap_closing_max_frame_count=3,
        splitting_cutoff=60.0**2,
    )
    for position in sorted({w.position for w in wells}):
        frames = read_tra_frames(ground_truth, position)
        for index, well in ((i, w) for i, w in enumerate(wells) if w.position == position):
            x0, y0, x1, y1 = well.box
            records = []
            for t, frame in enumerate(frames):
                obs = measure(frame[y0:y1, x0:x1])
                records += [
                    {"frame": t, "x": x, "y": y, "area": a}
                    for x, y, a in zip(obs.x_px, obs.y_px, obs.area_px, strict=True)
                ]
            if not records:
                continue
            df = pd.DataFrame.from_records(records)
            started = time.perf_counter()
            track_df, _, _ = tracker.predict_dataframe(
                df, coordinate_cols=["x", "y"], frame_col="frame", only_coordinate_cols=False
            )
            seconds += time.perf_counter() - started
            rows += [
                TrackRow(
                    position,
                    int(r.frame),
                    index * _WELL_ID_STRIDE + int(r.track_id) + 1,
                    well.name,
                    float(r.x) + x0,
                    float(r.y) + y0,
                    float(r.area),
                    cell_type="",
                    state="",
                )
                for r in track_df.itertuples()
            ]
    return rows, seconds


def _laptrack_section(folders: Sequence[Path]) -> int:
    try:
        import laptrack  # noqa: F401
        import pandas  # noqa: F401
    except ImportError:
        print("laptrack not installed (pip install -e '.[dev]'): section skipped")
        return 0
    _truth_header(
        f"laptrack (LAP on centroids, squared distance: linking and gap closing (3 frames) "
        f"within {_LAPTRACK_LINK_PX:g} px, splitting within 60 px) on the same masks, per well"
    )
    groups, total = _score_on_truth(folders, _laptrack_rows, echo=False)
    _print_groups("laptrack", groups, total)
    print("track s: seconds in laptrack's predict_dataframe (centroids measured beforehand)")
    return 0


# --- scale --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyntheticChip:
    """A square lattice of wells, 3 cells each, moving by a random walk (px)."""

    boxes: npt.NDArray[np.int64]
    pitch_px: int
    well_px: int
    cell_radius_px: int


def _chip(wells: int) -> SyntheticChip:
    side = int(np.ceil(np.sqrt(wells)))
    pitch, size = 40, 34
    grid = np.arange(side * side)[:wells]
    x0 = (grid % side) * pitch + 3
    y0 = (grid // side) * pitch + 3
    boxes = np.stack([x0, y0, x0 + size, y0 + size], axis=1).astype(np.int64)
    return SyntheticChip(boxes, pitch, size, 4)


def _positions(chip: SyntheticChip, frames: int, seed: int) -> npt.NDArray[np.float64]:
    """``[frames, wells, 3, 2]`` cell centres (absolute px), kept inside their wells."""
    rng = np.random.default_rng(seed)
    n = len(chip.boxes)
    r = chip.cell_radius_px
    lo, hi = r + 1, chip.well_px - r - 2
    start = rng.uniform(lo, hi, (n, 3, 2))
    steps = rng.normal(0, 1.5, (frames, n, 3, 2))
    rel = np.clip(start[None] + np.cumsum(steps, axis=0), lo, hi)
    return rel + chip.boxes[None, :, None, :2].astype(np.float64)


def _chip_observations(chip: SyntheticChip, centres: npt.NDArray[np.float64]) -> Observations:
    n = centres.shape[0]
    area = np.full(n * 3, np.pi * chip.cell_radius_px**2)
    flat = centres.reshape(-1, 2)
    return Observations.from_arrays(np.arange(1, n * 3 + 1), flat[:, 0], flat[:, 1], area)


def _chip_labels(chip: SyntheticChip, centres: npt.NDArray[np.float64]) -> npt.NDArray[np.int32]:
    side = int(chip.boxes[:, 2].max()) + 3
    image = np.zeros((side, side), np.int32)
    r = chip.cell_radius_px
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    disc = dx**2 + dy**2 <= r * r
    ox, oy = dx[disc], dy[disc]
    flat = np.rint(centres.reshape(-1, 2)).astype(np.int64)
    labels = np.arange(1, len(flat) + 1, dtype=np.int32)
    image[flat[:, 1:2] + oy[None, :], flat[:, 0:1] + ox[None, :]] = labels[:, None]
    return image


def _chip_step_observations(
    trackers: list[NanowellTracker], chip: SyntheticChip, obs: Observations, t: int
) -> None:
    for tracker, part in zip(trackers, split_by_box(obs, chip.boxes), strict=True):
        tracker.update_observations(part, t, touching=())


def _chip_step_labels(
    trackers: list[NanowellTracker], chip: SyntheticChip, image: npt.NDArray[np.int32], t: int
) -> None:
    obs = measure(image)
    pairs = touching_pairs(image)
    parts = split_by_box(obs, chip.boxes)
    box_of = np.full(int(image.max()) + 1, -1, np.int64)
    box_of[obs.label] = assign_to_boxes(obs.x_px, obs.y_px, chip.boxes)
    # the pairs by the well of their first label, as one list sliced per well
    which = box_of[pairs[:, 0]]
    order = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange(len(chip.boxes) + 1)).tolist()
    listed: list[tuple[int, int]] = [(a, b) for a, b in pairs[order].tolist()]
    for tracker, part, lo, hi in zip(trackers, parts, bounds[:-1], bounds[1:], strict=True):
        tracker.update_observations(part, t, touching=listed[lo:hi])


def _scale_section(sizes: Sequence[int], frames: int) -> int:
    print(
        "scale: synthetic chip, 3 cells per well moving ~1.5 px/frame, one tracker per well, "
        f"median of {frames} frames (after the first)"
    )
    print(f"{'wells':>8}{'obs s/frame':>13}{'us/well':>9}{'labels s/frame':>16}{'us/well':>9}")
    met: bool | None = None  # None: 5,000 wells not among the sizes
    for wells in sizes:
        chip = _chip(wells)
        centres = _positions(chip, frames + 1, seed=wells)
        timings = []
        for mode in ("observations", "labels"):
            trackers = [NanowellTracker() for _ in range(wells)]
            samples = []
            for t in range(frames + 1):
                if mode == "observations":
                    obs = _chip_observations(chip, centres[t])
                    started = time.perf_counter()
                    _chip_step_observations(trackers, chip, obs, t)
                else:
                    image = _chip_labels(chip, centres[t])
                    started = time.perf_counter()
                    _chip_step_labels(trackers, chip, image, t)
                if t:
                    samples.append(time.perf_counter() - started)
            timings.append(float(np.median(samples)))
        if wells == 5000:
            met = timings[0] < _SCALE_TARGET_S
        print(
            f"{wells:>8}{timings[0]:>13.3f}{timings[0] / wells * 1e6:>9.1f}"
            f"{timings[1]:>16.3f}{timings[1] / wells * 1e6:>9.1f}"
        )
    print(
        "obs: the frame's measurements split by well box + every well's update; labels: "
        "the same plus measuring the chip's label image and its touching pairs. "
        f"Target at 5,000 wells (obs) < {_SCALE_TARGET_S} s: "
        + {True: "met", False: "MISSED", None: "not measured (5000 not in --wells)"}[met]
    )
    return 0
