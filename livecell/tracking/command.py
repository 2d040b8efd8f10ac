"""``livecell track``: track a Cell Tracking Challenge folder of masks, write CTC results.

Reads the label masks of one sequence (``man_seg*.tif``, ``mask*.tif`` or
``man_track*.tif``; frame ``t`` is the number in the file name; frames the numbers
skip are tracked across, with a warning), tracks the whole field with one
:class:`~livecell.tracking.nanowell.NanowellTracker` without containment (cells may
enter and leave), and writes ``RES/mask###.tif`` (one per input frame, same ``t``; four
digits once ``t`` reaches 1000, as the Challenge names them) with each instance
relabelled by its result track, and ``RES/res_track.txt`` (``L B E P``, with
divisions). The masks and ``res_track.txt`` of an earlier result in ``RES`` are
removed first, so the folder holds one consistent result. Exit status: 0 written; 2 no
masks, a frame number twice, an unreadable or inconsistent mask (not 2-D
integer labels, negative labels, another shape than the first), more result tracks
than a 16-bit mask holds, ``--out`` the masks folder itself, a bad option or an
unwritable output (one line naming it).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_USAGE = 0, 2
MASK_PATTERNS = ("man_seg*.tif", "mask*.tif", "man_track*.tif")
MAX_RESULT_LABELS = 65535  # the Challenge's masks are 16-bit
_FRAME_NUMBER = re.compile(r"(\d+)\.tif$")

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
    """The sequence's mask files: those of the first pattern that matches."""
    for pattern in MASK_PATTERNS:
        found = sorted(folder.glob(pattern))
        if found:
            return found
    return []


def numbered_frames(files: Sequence[Path]) -> tuple[list[tuple[int, Path]], str | None]:
    """``(t, path)`` in frame order, ``t`` the number that ends the file name (by value:
    ``mask1000.tif`` comes after ``mask999.tif``); and what is wrong, if anything."""
    numbered: list[tuple[int, Path]] = []
    for path in files:
        match = _FRAME_NUMBER.search(path.name)
        if match is None:
            return [], f"{path.name} has no frame number before .tif"
        numbered.append((int(match.group(1)), path))
    numbered.sort()
    for (t_before, before), (t, path) in pairwise(numbered):
        if t == t_before:
            return [], f"{before.name} and {path.name} are both frame {t}"
    return numbered, None


def missing_frames(numbered: Sequence[tuple[int, Path]]) -> list[str]:
    """The frame numbers the sequence skips, as ranges (``["1-4", "9"]``)."""
    gaps = []
    for (t_before, _), (t, _) in pairwise(numbered):
        if t > t_before + 1:
            gaps.append(f"{t_before + 1}" if t == t_before + 2 else f"{t_before + 1}-{t - 1}")
    return gaps


def result_mask_name(t: int, last_t: int) -> str:
    """``mask###.tif``, four digits for sequences that reach frame 1000."""
    digits = 4 if last_t >= 1000 else 3
    return f"mask{t:0{digits}d}.tif"


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
    numbered, problem = numbered_frames(files)
    if problem is not None:
        print(f"livecell track: {args.masks}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    gaps = missing_frames(numbered)
    if gaps:  # a Challenge SEG folder is annotated on some frames only
        warning = f"no masks for frame(s) {', '.join(gaps)}; tracked across the gaps"
        print(f"livecell track: warning: {warning}", file=sys.stderr)
    params = TrackerParams(
        containment=False,
        max_link_distance_px=args.max_link_distance,
        max_missed_frames=args.max_missed_frames,
    )
    tracker = NanowellTracker(params)
    frames: list[np.ndarray] = []
    updates = []
    for t, path in numbered:
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
    if len(result.tracks) > MAX_RESULT_LABELS:
        print(f"livecell track: {len(result.tracks)} result tracks do not fit the Challenge's "
              f"16-bit masks (at most {MAX_RESULT_LABELS})", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    last_t = numbered[-1][0]
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        removed = _remove_earlier_result(args.out)
        for (t, _), labels, mapping in zip(numbered, frames, result.label_maps, strict=True):
            tifffile.imwrite(args.out / result_mask_name(t, last_t), relabel(labels, mapping))
        (args.out / "res_track.txt").write_text(format_res_track(result.tracks))
    except OSError as exc:
        print(f"livecell track: cannot write {args.out}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if removed:
        print(f"removed {removed} file(s) of an earlier result in {args.out}")
    print(f"tracked {len(files)} frames, {len(result.tracks)} tracks -> {args.out}")
    return EXIT_OK


def _remove_earlier_result(out: Path) -> int:
    """Delete the ``mask*.tif`` and ``res_track.txt`` already in ``out``; how many."""
    earlier = [*out.glob("mask*.tif"), out / "res_track.txt"]
    removed = 0
    for path in earlier:
        if path.is_file():
            path.unlink()
            removed += 1
    return removed


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
