"""Well lattice speed on a 2048 x 2048 frame (issue 5): ``livecell bench wells``.

Times the nanowell-mode lattice stages on simulated frames (made in memory, not
timed): the first-frame fit, following the walls on a later frame, phase
correlation, and one streaming ``WellLattice.update``. OpenCV's
``phaseCorrelate`` on the same pair is the baseline measured in the same run.
Reports p50 and p99 in milliseconds. Run as ``python benchmarks/wells.py`` or
``livecell bench wells``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from livecell.analysis.wells import WellLattice, fit_lattice, lattice_offset, track_drift
from livecell.argtypes import at_least_one, non_negative
from livecell.bench._timing import call_seconds
from livecell.bench.nanowell import MIN_SIZE_PX
from livecell.simulation.nanowell import NanowellSimulator
from livecell.simulation.nanowell_params import NanowellParams


def _time_ms(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    samples_ms = 1e3 * np.array(call_seconds(call, repeats, warm_up=True))  # FFT plans, caches
    return float(np.percentile(samples_ms, 50)), float(np.percentile(samples_ms, 99))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/wells.py", description="Well lattice fit and drift speed."
    )
    parser.add_argument(
        "--size", type=at_least_one, default=2048, help="frame side in px (768 or more)"
    )
    parser.add_argument("--repeats", type=at_least_one, default=10, help="timed calls per stage")
    parser.add_argument("--threads", type=non_negative, default=1, help="OpenCV threads")
    args = parser.parse_args(argv)
    if args.size < MIN_SIZE_PX:
        parser.error(f"--size must be {MIN_SIZE_PX} or more (the wells must show a lattice)")
    cv2.setNumThreads(args.threads)

    wells = max(1, args.size // 256)
    sim = NanowellSimulator(
        NanowellParams(frame_size_px=args.size, wells_per_side=wells, stage_drift_step_px=4.0),
        seed=0,
    )
    first = sim.step()[0].image.astype(np.float32)
    later = sim.step()[0].image.astype(np.float32)
    lattice = fit_lattice(first)
    stream = WellLattice()
    stream.update(first, 0)
    window = cv2.createHanningWindow((args.size, args.size), cv2.CV_32F)

    rows = [
        ("fit_lattice", lambda: fit_lattice(first)),
        ("lattice_offset", lambda: lattice_offset(lattice, later)),
        ("track_drift", lambda: track_drift(first, later)),
        ("cv2.phaseCorrelate (baseline)", lambda: cv2.phaseCorrelate(first, later, window)),
        ("WellLattice.update", lambda: stream.update(later, 1)),
    ]
    print(f"{args.size} x {args.size} px, {wells}x{wells} wells, {args.threads} OpenCV thread(s)")
    results = {}
    for name, call in rows:
        p50, p99 = _time_ms(call, args.repeats)
        results[name] = p50
        print(f"{name:32s} p50 {p50:8.1f} ms   p99 {p99:8.1f} ms")
    ratio = results["track_drift"] / results["cv2.phaseCorrelate (baseline)"]
    print(f"track_drift / cv2.phaseCorrelate: {ratio:.2f}x")
    truth = sim.stage_offset_px("Pos0", 1)
    print(
        f"drift truth {truth[0]:+.3f}, {truth[1]:+.3f} px; "
        f"WellLattice.update {stream.offset_px[0]:+.3f}, {stream.offset_px[1]:+.3f} px"
    )
    return 0
