"""The segmentation benchmark: U-Net vs classical on held-out simulated nanowell wells.

Simulates the held-out seeds (71 and 72 unless told otherwise; never trained on) into
a work folder (kept and reused when given), cuts every well of every ``--frame-stride``-th
frame with the wall-tracked drift (``livecell.training.segmentation_data``), runs
each segmenter once per frame with all its wells, as the daemon will, and prints the
mean per-cell IoU (one-to-one matching, ``livecell.segmentation.scoring``) overall and
by ground-truth cells per well, with the time per well.

Run as ``python benchmarks/segmentation.py`` or ``livecell bench segmentation``.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from livecell.argtypes import at_least_one, existing_dir, non_negative
from livecell.segmentation._protocol import Segmenter
from livecell.segmentation.classical import ClassicalSegmenter
from livecell.segmentation.scoring import SegmentationScore
from livecell.segmentation.unet import UNetSegmenter
from livecell.simulation.nanowell import NanowellParams, NanowellSimulator
from livecell.simulation.run import RunOptions, run_simulation
from livecell.training.segmentation_data import WellCrop, iter_well_crops


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/segmentation.py",
        description="Per-well cell segmentation of nanowell frames: U-Net vs classical.",
    )
    parser.add_argument(
        "--seeds", type=non_negative, nargs="+", default=[71, 72], help="held-out seeds"
    )
    parser.add_argument("--frames", type=at_least_one, default=24, help="frames simulated per seed")
    parser.add_argument(
        "--frame-stride", type=at_least_one, default=8, help="score every Nth frame (default: 8)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep simulations here (default: a temp dir)"
    )
    parser.add_argument(
        "--model-dir",
        type=existing_dir,
        default=None,
        help="U-Net folder (default: the bundled one)",
    )
    parser.add_argument("--threads", type=non_negative, default=1, help="ONNX Runtime threads")
    return parser


def held_out_crops(workdir: Path, seeds: Sequence[int], frames: int, stride: int) -> list[WellCrop]:
    """Every well crop of every ``stride``-th frame of the simulated ``seeds``."""
    crops: list[WellCrop] = []
    for seed in seeds:
        out = workdir / f"nano{seed}-{frames}frames"  # a kept simulation of other length: not it
        if not (out / "ground_truth" / "tracks.csv").is_file():
            simulator = NanowellSimulator(NanowellParams(), seed=seed)
            run_simulation(simulator, out, RunOptions(frames=frames, progress=False))
        crops.extend(iter_well_crops(out, every=stride))
    return crops


def run_segmenter(
    segmenter: Segmenter, crops: Sequence[WellCrop]
) -> tuple[SegmentationScore, float]:
    """(score, seconds per well): one ``segment`` call per frame with all its wells."""
    frames: dict[tuple[str, str, int], list[WellCrop]] = defaultdict(list)
    for crop in crops:
        frames[(crop.acquisition, crop.position, crop.t)].append(crop)
    score = SegmentationScore()
    elapsed = 0.0
    for wells in frames.values():
        started = time.perf_counter()
        labels = segmenter.segment([w.image for w in wells])
        elapsed += time.perf_counter() - started
        for well, predicted in zip(wells, labels, strict=True):
            score.add_well(well.labels, predicted)
    return score, elapsed / max(1, len(crops))


def format_table(results: dict[str, tuple[SegmentationScore, float]]) -> str:
    """The mean IoU by cells per well, one column per segmenter, and ms per well."""
    names = list(results)
    counts = sorted({n for score, _ in results.values() for n in score.by_count})
    lines = [f"{'cells/well':>10} {'cells':>6} " + " ".join(f"{name:>10}" for name in names)]
    for n in counts:
        cells = max(len(score.by_count.get(n, [])) for score, _ in results.values())
        row = " ".join(
            f"{results[name][0].mean_iou_by_count().get(n, (float('nan'), 0))[0]:>10.3f}"
            for name in names
        )
        lines.append(f"{n:>10} {cells:>6} {row}")
    total = max(score.cells for score, _ in results.values())
    lines.append(
        f"{'all':>10} {total:>6} " + " ".join(f"{results[n][0].mean_iou():>10.3f}" for n in names)
    )
    lines.append(
        f"{'ms/well':>10} {'':>6} " + " ".join(f"{results[n][1] * 1e3:>10.1f}" for n in names)
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="livecell-bench-seg-") as scratch:
        workdir = args.workdir or Path(scratch)
        crops = held_out_crops(workdir, args.seeds, args.frames, args.frame_stride)
        unet = (
            UNetSegmenter.bundled(threads=args.threads)
            if args.model_dir is None
            else UNetSegmenter(args.model_dir, threads=args.threads)
        )
        try:
            results = {
                "unet": run_segmenter(unet, crops),
                "classical": run_segmenter(ClassicalSegmenter(), crops),
            }
        finally:
            unet.close()
    print(
        f"segmentation: seeds {' '.join(map(str, args.seeds))}, {len(crops)} wells, "
        f"one frame in {args.frame_stride} of {args.frames}; mean IoU per ground-truth "
        f"cell (one-to-one match); {platform.processor() or platform.machine()}, "
        f"ONNX Runtime threads {args.threads}"
    )
    print(format_table(results))
    return 0
