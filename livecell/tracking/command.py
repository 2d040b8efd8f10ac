"""``livecell track``: track a Cell Tracking Challenge folder of masks, write CTC results.

Reads the label masks of one sequence (``man_seg*.tif``, ``mask*.tif`` or
``man_track*.tif``, sorted by name; frame ``t`` is the ``t``-th file), tracks the whole
field with one :class:`~livecell.tracking.nanowell.NanowellTracker` without containment
(cells may enter and leave), and writes ``RES/mask###.tif`` (one per input frame, each
instance relabelled by its result track) and ``RES/res_track.txt`` (``L B E P``, with
divisions). Exit status: 0 written; 2 no masks, an unreadable or inconsistent mask
(not 2-D integer labels, negative labels, another shape than the first), ``--out`` the
masks folder itself, a bad option or an unwritable output (one line naming it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_USAGE = 0, 2
MASK_PATTERNS = ("man_seg*.tif", "mask*.tif", "man_track*.tif")

DESCRIPTION = (
    "Track a folder of Cell Tracking Challenge label masks (man_seg*.tif, mask*.tif or "
    "man_track*.tif) over the whole field and write Challenge results: RES/mask###.tif "
    "and RES/res_track.txt (L B E P, divisions included). Score them with "
    "`livecell evaluate GROUND_TRUTH --ctc RES`."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("masks", type=Path, metavar="MASKS", help="folder of label masks")
    parser.add_argument(
        "--out", type=Path, required=True, metavar="RES", help="result folder (created)"
    )
    parser.add_argument(
        "--max-link-distance",
        type=float,
        default=60.0,
        metavar="PX",
        help="farthest a cell may move between frames (default 60 px)",
    )
    parser.add_argument(
        "--max-missed-frames",
        type=int,
        default=2,
        metavar="N",
        help="frames a lost cell is waited for before its track ends (default 2)",
    )


def mask_files(folder: Path) -> list[Path]:
    """The sequence's mask files: the first pattern that matches, sorted by name."""
    for pattern in MASK_PATTERNS:
        found = sorted(folder.glob(pattern))
        if found:
            return found
    return []


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import tifffile

    from livecell.tracking.ctc import ctc_result, format_res_track, relabel
    from livecell.tracking.nanowell import NanowellTracker, TrackerParams

    problem = _argument_problem(args)
    if problem is not None:
        print(f"livecell track: {problem}", file=sys.stderr)
        return EXIT_USAGE
    files = mask_files(args.masks)
    if not files:
        print(f"livecell track: no masks ({', '.join(MASK_PATTERNS)}) in {args.masks}",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    params = TrackerParams(
        containment=False,
        max_link_distance_px=args.max_link_distance,
        max_missed_frames=args.max_missed_frames,
    )
    tracker = NanowellTracker(params)
    frames: list[np.ndarray] = []
    updates = []
    for t, path in enumerate(files):
        try:
            labels = np.asarray(tifffile.imread(path))
        except (OSError, ValueError) as exc:
            print(f"livecell track: cannot read {path}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        problem = _mask_problem(labels, frames[0].shape if frames else None)
        if problem is not None:
            print(f"livecell track: {path} {problem}", file=sys.stderr)
            return EXIT_USAGE
        frames.append(labels)
        updates.append(tracker.update(labels, t))
    result = ctc_result(updates)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        for t, (labels, mapping) in enumerate(zip(frames, result.label_maps, strict=True)):
            tifffile.imwrite(args.out / f"mask{t:03d}.tif", relabel(labels, mapping))
        (args.out / "res_track.txt").write_text(format_res_track(result.tracks))
    except OSError as exc:
        print(f"livecell track: cannot write {args.out}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"tracked {len(files)} frames, {len(result.tracks)} tracks -> {args.out}")
    return EXIT_OK


def _argument_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the command line, in words; None if nothing."""
    if not args.masks.is_dir():
        return f"MASKS {args.masks} is not a folder"
    if args.out.resolve() == args.masks.resolve():
        return "--out is the MASKS folder: its masks would be overwritten; give another folder"
    if not args.max_link_distance > 0:
        return f"--max-link-distance must be positive, got {args.max_link_distance}"
    if args.max_missed_frames < 0:
        return f"--max-missed-frames must be 0 or more, got {args.max_missed_frames}"
    return None


def _mask_problem(labels: Any, first_shape: tuple[int, ...] | None) -> str | None:
    """What makes ``labels`` no label mask of this sequence, in words; None if nothing."""
    import numpy as np

    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        return "is not a 2-D label image"
    if labels.size and labels.min() < 0:
        return f"has negative labels (down to {labels.min()})"
    if first_shape is not None and labels.shape != first_shape:
        height, width = first_shape
        return f"is {labels.shape[0]} x {labels.shape[1]}, the first mask {height} x {width}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="livecell track", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))
