"""Patch mode per frame on a wide-field holotomography MIP (issue 6, acceptance 2).

``bench_patch_frame(frames, size_px)`` times :class:`~livecell.analysis.patches.PatchStage`
``update`` on ``size_px`` x ``size_px`` MIPs (default 3700: the ~588 um stitched field of
the holotomography paper at 0.16 um/px) with the bundled ``holotomo_states`` model on
ONNX Runtime, CPU, intra-op threads left to ONNX Runtime (all cores), exactly as
``open_patch_stage`` builds the stage for the daemon. The frames are simulated
(``HolotomoSimulator``, 1280 px MIPs, made before timing, not timed) and tiled edge to
edge up to ``size_px``, so each frame has the cell density of a real field. The stage
is warmed up first (``warm_up``), as the daemon does before it reports ready.

Reports p50 and p99 seconds per frame for the whole ``update`` and for each sub-stage
(``mip``, ``tiling`` = grid + Otsu + foreground cut + tile copy, ``engine`` =
normalisation + batched inference, ``patch_states`` = hysteresis and events).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from livecell.analysis.patches import open_patch_stage
from livecell.config import config_from_dict
from livecell.frames import Frame, FrameKey
from livecell.simulation.holotomo import HolotomoParams, HolotomoSimulator

__all__ = ["PatchBench", "PatchBenchRow", "bench_patch_frame", "simulated_mips"]

SUB_STAGES = ("mip", "tiling", "engine", "patch_states")
SIM_PX = 1280  # the simulated field, tiled up to the benchmark size
SIM_Z = 16


@dataclass(frozen=True, slots=True)
class PatchBenchRow:
    name: str
    p50_s: float
    p99_s: float


@dataclass(frozen=True, slots=True)
class PatchBench:
    """The result: per-frame seconds, p50 and p99, whole frame and sub-stages."""

    size_px: int
    frames: int
    grid: tuple[int, int]
    patches_classified: float  # mean per frame (not skipped as empty)
    backend: str
    rows: tuple[PatchBenchRow, ...]

    @property
    def p99_s(self) -> float:
        return next(r.p99_s for r in self.rows if r.name == "whole frame")

    def render(self) -> str:
        lines = [
            f"patch stage, {self.size_px} x {self.size_px} px MIP, {self.frames} frames, "
            f"grid {self.grid[0]} x {self.grid[1]}, {self.patches_classified:.0f} patches "
            f"classified per frame, {self.backend}",
            f"{'sub-stage':<14}{'p50 s':>10}{'p99 s':>10}",
        ]
        lines += [f"{r.name:<14}{r.p50_s:>10.3f}{r.p99_s:>10.3f}" for r in self.rows]
        return "\n".join(lines)


def simulated_mips(frames: int, size_px: int, *, seed: int = 0) -> list[npt.NDArray[np.float32]]:
    """``frames`` consecutive simulated MIPs, each tiled edge to edge to ``size_px`` square."""
    params = HolotomoParams(size_px=SIM_PX, z_slices=SIM_Z, mip=True)
    sim = HolotomoSimulator(params, seed=seed)
    reps = -(-size_px // SIM_PX)
    out = []
    for _ in range(frames):
        mip = np.asarray(sim.step()[0].image, dtype=np.float32)
        out.append(np.ascontiguousarray(np.tile(mip, (reps, reps))[:size_px, :size_px]))
    return out


def bench_patch_frame(frames: int, size_px: int = 3700) -> PatchBench:
    """Time the patch stage's ``update`` on ``frames`` simulated ``size_px`` MIPs."""
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    images = simulated_mips(frames, size_px)
    config = config_from_dict(
        {
            "source": {"kind": "zmq"},
            "analysis": {"mode": "patches"},
            "engine": {"backend": "onnxruntime"},
        },
        base_dir=Path.cwd(),
    )
    meters = _Recorder()
    stage = open_patch_stage(config, meters)
    try:
        stage.warm_up()
        totals: list[float] = []
        grid = (0, 0)
        for t, image in enumerate(images):
            frame = Frame(FrameKey("bench", "Pos0", t), image, "YX", "zmq", completed_at=0.0)
            started = time.perf_counter()
            events = stage.update(frame)
            totals.append(time.perf_counter() - started)
            rows_cols = events[0].fields["grid"]
            grid = (int(rows_cols[0]), int(rows_cols[1]))
        backend = f"{stage.model.backend.name} on {stage.model.backend.device}"
    finally:
        stage.close()
    rows = [_row(name, meters.seconds[name]) for name in SUB_STAGES]
    rows.append(_row("whole frame", totals))
    return PatchBench(
        size_px=size_px,
        frames=frames,
        grid=grid,
        patches_classified=meters.items / frames,
        backend=backend,
        rows=tuple(rows),
    )


class _Recorder:
    """Every sub-stage time, kept for percentiles (the daemon's histograms would bin them)."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.items = 0

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.seconds[stage].append(seconds)

    def count_engine_items(self, model: str, backend: str, items: int) -> None:
        self.items += items


def _row(name: str, samples_s: list[float]) -> PatchBenchRow:
    if not samples_s:
        return PatchBenchRow(name, float("nan"), float("nan"))
    a = np.array(samples_s)
    return PatchBenchRow(name, float(np.percentile(a, 50)), float(np.percentile(a, 99)))
