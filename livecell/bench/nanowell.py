"""Nanowell mode per frame, stage by stage (issue 5): ``livecell bench nanowell``.

Simulated 2048 x 2048 frames (made in memory, not timed) go through the nanowell
stage exactly as the daemon builds it (bundled models, ONNX Runtime on the CPU),
and the time of each sub-stage per frame is reported, p50 and p99 in
milliseconds, beside the acquisition interval it must fit in (TIMING: 5 min).
Run as ``python benchmarks/nanowell.py`` or ``livecell bench nanowell``.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from livecell.analysis.nanowell import open_nanowell_stage
from livecell.argtypes import at_least_one, non_negative, positive_float
from livecell.config import config_from_dict
from livecell.frames import Frame, FrameKey
from livecell.simulation.nanowell import NanowellSimulator
from livecell.simulation.nanowell_params import NanowellParams

SUB_STAGES = ("wells", "segmentation", "contacts", "tracking", "cell_models")
MIN_SIZE_PX = 768  # 3 wells of 256 px a side: fewer show no periodic wall pattern to fit


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/nanowell.py", description="Nanowell stage time per frame."
    )
    parser.add_argument(
        "--frames",
        type=at_least_one,
        default=12,
        help="frames (default 12; the first, which fits the well lattice, is not timed)",
    )
    parser.add_argument(
        "--size", type=at_least_one, default=2048, help="frame side in px (768 or more)"
    )
    parser.add_argument("--seed", type=non_negative, default=3, help="simulator seed")
    parser.add_argument(
        "--segmenter", choices=["unet", "classical"], default="unet", help="as nanowell.segmenter"
    )
    parser.add_argument(
        "--contact-rule",
        choices=["net", "model", "adjacency"],
        default="net",
        help="as nanowell.contact_rule",
    )
    parser.add_argument(
        "--interval-s", type=positive_float, default=300.0, help="acquisition interval"
    )
    args = parser.parse_args(argv)
    if args.frames < 2:
        parser.error("--frames must be 2 or more: the first frame is not timed")
    if args.size < MIN_SIZE_PX:
        parser.error(f"--size must be {MIN_SIZE_PX} or more (the wells must show a lattice)")

    config = config_from_dict(
        {
            "source": {"kind": "zmq"},
            "analysis": {"mode": "nanowell"},
            "nanowell": {"segmenter": args.segmenter, "contact_rule": args.contact_rule},
            "sinks": {"tracks": ""},
        },
        base_dir=Path.cwd(),
    )
    meters = _Recorder()
    seconds = meters.seconds
    stage = open_nanowell_stage(config, meters)
    sim = NanowellSimulator(
        NanowellParams(frame_size_px=args.size, wells_per_side=max(1, args.size // 256)),
        seed=args.seed,
    )
    totals: list[float] = []
    cells = 0
    for t in range(args.frames):
        sim_frame = sim.step()[0]
        frame = Frame(
            key=FrameKey("bench", sim_frame.position, t),
            pixels=sim_frame.image,
            axes=sim_frame.axes,
            source="zmq",
            completed_at=0.0,
        )
        started = time.perf_counter()
        stage.update(frame)
        totals.append(time.perf_counter() - started)
        cells += len(sim_frame.cells)
    stage.close()

    print(
        f"nanowell stage, {args.size} x {args.size} px, {args.frames} frames, "
        f"{cells / args.frames:.0f} cells per frame, segmenter {args.segmenter}, "
        f"contacts by {args.contact_rule}"
    )
    print(f"{'sub-stage':<14}{'p50 ms':>10}{'p99 ms':>10}")
    for name in SUB_STAGES:
        _row(name, seconds[name][1:])  # the first frame fits the lattice and warms sessions
    _row("whole frame", totals[1:])
    p99 = float(np.percentile(totals[1:], 99)) if len(totals) > 1 else float("nan")
    print(f"p99 is {100 * p99 / args.interval_s:.2f} % of a {args.interval_s:g} s interval")
    return 0


class _Recorder:
    """Every sub-stage time, kept for percentiles (the daemon's histograms would bin them)."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = defaultdict(list)

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.seconds[stage].append(seconds)

    def count_engine_items(self, model: str, backend: str, items: int) -> None:
        """Not reported by this benchmark."""


def _row(name: str, samples_s: list[float]) -> None:
    if not samples_s:
        print(f"{name:<14}{'-':>10}{'-':>10}")
        return
    ms = 1e3 * np.array(samples_s)
    print(f"{name:<14}{np.percentile(ms, 50):>10.1f}{np.percentile(ms, 99):>10.1f}")
