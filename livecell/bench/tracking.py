"""The tracking benchmark (issue 5): convex smoothing, banded solve vs CVXPY.

For tracks of several lengths with 20 % of frames missing, times
:func:`livecell.tracking.smoothing.smooth_track` (a pentadiagonal solve) against the
same QP stated in CVXPY and solved by Clarabel and OSQP, in the same process, and
checks that they agree. The tracker's scale benchmark (wells per frame) joins this
table when the tracker exists.

Run as ``python benchmarks/tracking.py`` or ``livecell bench tracking``.
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Any

import numpy as np

from livecell.bench._timing import call_seconds
from livecell.tracking.smoothing import smooth_track

_RATIO_TARGET = 100.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/tracking.py",
        description="Convex trajectory smoothing: livecell's banded solve vs CVXPY.",
    )
    parser.add_argument(
        "--lengths", type=int, nargs="+", default=[72, 288, 1000], help="track lengths (frames)"
    )
    parser.add_argument("--lam", type=float, default=10.0, help="curvature weight")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per cell (median)")
    return parser


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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import cvxpy  # noqa: F401
    except ImportError:
        print("the reference needs cvxpy: pip install -e '.[dev]'")
        return 1
    print(f"livecell tracking benchmark: Python {platform.python_version()}, one core")
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
