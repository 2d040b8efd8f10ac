"""The daemon end to end (issue 6, acceptance 2): ``livecell bench pipeline``.

Live latency: a thread plays the microscope, writing simulated frames into a watched
folder at a fixed interval, while :func:`livecell.daemon.run_daemon` analyses them in
the same process exactly as ``livecell run`` does (inotify watch source, bundled models,
ONNX Runtime on the CPU). Each frame's latency is the pipeline's own measure: from the
frame being complete on disk to its last event written (``livecell_frame_latency_seconds``).

- ``nanowell``: 2048 x 2048 frames with 8 x 8 = 64 wells; target p99 <= 5 s.
- ``holotomo``: 3700 x 3700 holotomography MIPs in patch mode; target p99 <= 10 s.
- ``replay``: ``livecell replay`` of a finished two-position nanowell acquisition with 1
  and with 2 worker processes: frames per second.

The frames are simulated before anything is timed. Run as ``python benchmarks/pipeline.py``
or ``livecell bench pipeline``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livecell.argtypes import at_least_one, non_negative, non_negative_float
from livecell.bench._live import live_config, run_live
from livecell.logs import configure_logging

SECTIONS = ("nanowell", "holotomo", "replay")
NANOWELL_TARGET_S = 5.0
HOLOTOMO_TARGET_S = 10.0


@dataclass(frozen=True, slots=True)
class LatencyRow:
    name: str
    frames: int
    interval_s: float
    p50_s: float
    p99_s: float
    max_s: float
    target_s: float

    def render(self) -> str:
        verdict = "met" if self.p99_s <= self.target_s else "MISSED"
        return (
            f"{self.name:>10}{self.frames:>8}{self.interval_s:>10.1f}{self.p50_s:>9.2f}"
            f"{self.p99_s:>9.2f}{self.max_s:>9.2f}   p99 <= {self.target_s:g} s {verdict}"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/pipeline.py",
        description="The daemon end to end: live frame latency in nanowell and patch mode, "
        "and replay throughput with 1 and 2 workers.",
    )
    parser.add_argument("--sections", nargs="+", choices=[*SECTIONS, "all"], default=["all"])
    parser.add_argument("--frames", type=at_least_one, default=12, help="frames per live run")
    parser.add_argument(
        "--nanowell-interval-s",
        type=non_negative_float,
        default=4.0,
        help="the microscope's pace, nanowell",
    )
    parser.add_argument(
        "--holotomo-interval-s",
        type=non_negative_float,
        default=3.0,
        help="the microscope's pace, holotomo",
    )
    parser.add_argument("--replay-frames", type=at_least_one, default=8, help="frames per position")
    parser.add_argument("--seed", type=non_negative, default=3, help="simulator seed")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(level="warning")  # the daemon's per-frame lines would bury the table
    sections = SECTIONS if "all" in args.sections else tuple(args.sections)
    met = True
    with tempfile.TemporaryDirectory(prefix="livecell-bench-pipeline-") as tmp:
        work = Path(tmp)
        rows: list[LatencyRow] = []
        if "nanowell" in sections:
            staged = _nanowell_frames(work / "nanowell_sim", args.frames, args.seed, positions=1)
            rows.append(
                _live(
                    "nanowell",
                    staged,
                    work / "nanowell_live",
                    {"analysis": {"mode": "nanowell"}},
                    args.nanowell_interval_s,
                    NANOWELL_TARGET_S,
                )
            )
        if "holotomo" in sections:
            staged = _holotomo_frames(work / "holotomo_sim", args.frames, args.seed)
            rows.append(
                _live(
                    "holotomo",
                    staged,
                    work / "holotomo_live",
                    {"analysis": {"mode": "patches"}},
                    args.holotomo_interval_s,
                    HOLOTOMO_TARGET_S,
                )
            )
        if rows:
            print("live frame latency (frame complete on disk -> its last event), seconds")
            print(f"{'mode':>10}{'frames':>8}{'interval':>10}{'p50':>9}{'p99':>9}{'max':>9}")
            for row in rows:
                print(row.render())
                met &= row.p99_s <= row.target_s
        if "replay" in sections:
            sim = work / "replay_sim"
            _nanowell_frames(sim, args.replay_frames, args.seed, positions=2)
            _replay_section(sim / "frames", work / "replay", args.replay_frames * 2)
    return 0 if met else 1


def _simulate(out: Path, *args: object) -> None:
    command = [sys.executable, "-m", "livecell", "simulate", str(out), *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"livecell simulate failed: {done.stderr.strip()}")


def _nanowell_frames(out: Path, frames: int, seed: int, *, positions: int) -> list[Path]:
    """A simulated 2048 x 2048, 64-well acquisition; its frame files in acquisition order."""
    _simulate(
        out,
        *("--kind", "nanowell", "--frames", frames, "--interval", 0, "--seed", seed),
        *("--size", 2048, "--wells", 8, "--positions", positions),
    )
    return sorted((out / "frames").rglob("*.tif"), key=lambda p: (p.name, p.parent.name))


def _holotomo_frames(out: Path, frames: int, seed: int) -> list[Path]:
    """3700 x 3700 MIPs (simulated fields tiled edge to edge) as float32 TIFFs."""
    import tifffile

    from livecell.bench.patches import simulated_mips

    folder = out / "Pos0"
    folder.mkdir(parents=True)
    paths = []
    for t, mip in enumerate(simulated_mips(frames, 3700, seed=seed)):
        path = folder / f"t{t:05d}.tif"
        tifffile.imwrite(path, np.ascontiguousarray(mip))
        paths.append(path)
    return paths


def _live(
    name: str,
    staged: list[Path],
    work: Path,
    sections: dict[str, object],
    interval_s: float,
    target_s: float,
) -> LatencyRow:
    """Frames copied into a watched folder every ``interval_s`` while the daemon runs."""
    config = live_config(work, sections)
    latencies = np.array(run_live(config, staged, interval_s, timeout_s=300).latencies_s)
    return LatencyRow(
        name,
        int(latencies.size),
        interval_s,
        float(np.percentile(latencies, 50)),
        float(np.percentile(latencies, 99)),
        float(latencies.max()),
        target_s,
    )


def _replay_section(frames_dir: Path, work: Path, frames: int) -> None:
    print(f"replay throughput: {frames} frames of 2048 x 2048, 64 wells, 2 positions")
    print(f"{'workers':>8}{'seconds':>9}{'frames/s':>10}")
    baseline = None
    for workers in (1, 2):
        folder = work / f"workers{workers}"
        folder.mkdir(parents=True)
        (folder / "livecell.toml").write_text(
            '[analysis]\nmode = "nanowell"\n[metrics]\naddress = ""\n', encoding="utf-8"
        )
        command = [sys.executable, "-m", "livecell", "replay", str(frames_dir)]
        command += ["-c", "livecell.toml", "--workers", str(workers)]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"replay --workers {workers} failed: {done.stderr.strip()[-500:]}")
        baseline = baseline or seconds
        print(
            f"{workers:>8}{seconds:>9.1f}{frames / seconds:>10.2f}"
            f"   ({baseline / seconds:.2f} x one worker; process start and model load included)"
        )
