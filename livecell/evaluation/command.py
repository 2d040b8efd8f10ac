"""``livecell evaluate``: score results against a ground-truth folder, print a table.

``add_arguments`` + ``run`` plug into the ``livecell`` command's subparsers
(importing this module is light: the scoring code loads in ``run``);
``main`` is the same as a standalone command. Exit status: 0 scored; 1 a
scoring library is missing (the message names the extra); 2 an input is
missing, unreadable or malformed, or an output cannot be written (one line
naming it, no traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from livecell.evaluation.defaults import (
    DEFAULT_CONTACT_GAP_FRAMES,
    DEFAULT_MAX_DISTANCE_PX,
    DEFAULT_MAX_ONSET_GAP,
    DEFAULT_MIN_IOU,
)
from livecell.evaluation.errors import InputError, MissingExtra

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

DESCRIPTION = (
    "Score livecell's events, tracks file or Cell Tracking Challenge results against the "
    "simulator's ground truth (OUT/ground_truth): patch states, tracking (MOTA, IDF1, "
    "CTC TRA/DET), deaths, contacts and cell types. Prints a table; --json and --plot "
    "write the full report and figures. Matching rules: docs/evaluation.md."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "ground_truth",
        type=Path,
        metavar="GROUND_TRUTH_DIR",
        help="the simulator's ground-truth folder (OUT/ground_truth)",
    )
    parser.add_argument(
        "--events", type=Path, default=None, metavar="FILE", help="livecell's events (JSON Lines)"
    )
    parser.add_argument(
        "--tracks", type=Path, default=None, metavar="FILE", help="livecell's tracks file (CSV)"
    )
    parser.add_argument(
        "--ctc",
        type=Path,
        default=None,
        metavar="RES_DIR",
        help="Cell Tracking Challenge results: res_track.txt + mask###.tif, or one such "
        "folder per position, named as the position",
    )
    parser.add_argument(
        "--json", type=Path, default=None, metavar="OUT", help="write the full report as JSON"
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="DIR",
        help="write confusion-matrix and timeline PNGs into DIR",
    )
    parser.add_argument(
        "--max-distance",
        type=float,
        default=DEFAULT_MAX_DISTANCE_PX,
        metavar="PX",
        help="tracking: the farthest a predicted centroid may be from the true one to match "
        f"(default: {DEFAULT_MAX_DISTANCE_PX:g} px)",
    )
    parser.add_argument(
        "--max-onset-gap",
        type=int,
        default=DEFAULT_MAX_ONSET_GAP,
        metavar="FRAMES",
        help="deaths matched without a tracks file: the largest onset difference "
        f"(default: {DEFAULT_MAX_ONSET_GAP})",
    )
    parser.add_argument(
        "--min-contact-iou",
        type=float,
        default=DEFAULT_MIN_IOU,
        metavar="X",
        help=f"contacts: the least interval IoU for a match (default: {DEFAULT_MIN_IOU:g})",
    )
    parser.add_argument(
        "--contact-gap-frames",
        type=int,
        default=DEFAULT_CONTACT_GAP_FRAMES,
        metavar="FRAMES",
        help="contacts: true contacts of a pair this many frames apart or fewer are one "
        f"contact, as the daemon's hysteresis counts them; 0: as written (default: "
        f"{DEFAULT_CONTACT_GAP_FRAMES})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livecell evaluate", description=DESCRIPTION)
    add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Score, print the table, write --json and --plot. Input errors: one line, exit 2."""
    from livecell.evaluation.report import format_table
    from livecell.evaluation.scoring import ScoringOptions, evaluate

    try:
        options = ScoringOptions(
            max_distance_px=args.max_distance,
            max_onset_gap=args.max_onset_gap,
            min_contact_iou=args.min_contact_iou,
            contact_gap_frames=args.contact_gap_frames,
        )
        if args.events is None and args.tracks is None and args.ctc is None:
            raise InputError("--events/--tracks/--ctc", "give at least one result to score")
        report = evaluate(
            args.ground_truth,
            events=args.events,
            tracks=args.tracks,
            ctc_results=args.ctc,
            options=options,
        )
        if args.json is not None:
            try:
                args.json.write_text(report.to_json(), encoding="utf-8")
            except OSError as exc:
                why = exc.strerror or exc
                raise InputError("--json", f"cannot write {args.json}: {why}") from None
        written: list[Path] = []
        if args.plot is not None:
            try:
                from livecell.evaluation.plots import write_plots
            except ImportError as exc:
                raise MissingExtra("matplotlib") from exc
            try:
                written = write_plots(report, args.plot)
            except OSError as exc:
                why = exc.strerror or exc
                raise InputError("--plot", f"cannot write into {args.plot}: {why}") from None
    except InputError as exc:
        print(f"livecell evaluate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MissingExtra as exc:
        print(f"livecell evaluate: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    sys.stdout.write(format_table(report))
    if args.json is not None:
        print(f"\nreport: {args.json}")
    if written:
        print(f"plots: {len(written)} PNGs in {args.plot}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or argparse's own usage error (status 2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    return run(args)
