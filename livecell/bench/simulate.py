"""The simulator benchmark: seconds per generated time point, on one core.

Targets (issue 3): one 2048 x 2048 nanowell frame in under 0.5 s; one
2048 x 2048 x 32 refractive-index volume in under 2 s. Both are timed with
OpenCV limited to one thread (numpy's element-wise work is single-threaded),
for ``--frames`` steps after one untimed warm-up step; the OME-TIFF encoding of
a frame (what ``simulate`` writes) is timed beside it.

Run as ``python benchmarks/simulate.py`` or ``livecell bench simulate``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable, Sequence

import cv2

from livecell.argtypes import at_least_one
from livecell.simulation._protocol import Simulator
from livecell.simulation.output import ome_tiff_bytes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--frames", type=at_least_one, default=10, help="timed steps per simulator")
    parser.add_argument("--size", type=at_least_one, default=2048, help="frame side in pixels")
    parser.add_argument("--z", type=at_least_one, default=32, help="holotomo z slices")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    from livecell.simulation.holotomo import HolotomoParams, HolotomoSimulator
    from livecell.simulation.nanowell import NanowellParams, NanowellSimulator

    try:  # the simulators' own checks, before anything is timed
        nanowell = NanowellParams(frame_size_px=args.size)
        holotomo = HolotomoParams(size_px=args.size, z_slices=args.z)
    except ValueError as exc:
        parser.error(f"--size {args.size} / --z {args.z}: {exc}")
    cases: list[tuple[str, float, Callable[[], Simulator]]] = [
        (
            f"nanowell {args.size} x {args.size} uint16",
            0.5,
            lambda: NanowellSimulator(nanowell, seed=1),
        ),
        (
            f"holotomo {args.size} x {args.size} x {args.z} float32",
            2.0,
            lambda: HolotomoSimulator(holotomo, seed=1),
        ),
    ]
    print(
        f"simulator benchmark: Python {platform.python_version()}, OpenCV threads 1, "
        f"{args.frames} timed steps after 1 warm-up\n"
    )
    print(
        f"{'case':38} {'p50 s':>7} {'p99 s':>7} {'max s':>7} {'target s':>9} "
        f"{'met':>4} {'encode s':>9}"
    )
    all_met = True
    for name, target_s, make in cases:
        simulator = make()
        simulator.step()
        step_s: list[float] = []
        encode_s: list[float] = []
        for _ in range(args.frames):
            started = time.perf_counter()
            frames = simulator.step()
            step_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            ome_tiff_bytes(frames[0], acquisition="bench")
            encode_s.append(time.perf_counter() - started)
        p50, p99 = statistics.median(step_s), _quantile(step_s, 0.99)
        met = p99 < target_s
        all_met &= met
        print(
            f"{name:38} {p50:7.3f} {p99:7.3f} {max(step_s):7.3f} {target_s:9.1f} "
            f"{'yes' if met else 'NO':>4} {statistics.median(encode_s):9.3f}"
        )
    return 0 if all_met else 1


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
