"""Cell Tracking Challenge TRA and DET of a result folder, by py-ctcmetrics.

Layout (what py-ctcmetrics reads): the ground truth of a position is
``ground_truth/<position>/TRA/`` with ``man_track###.tif`` and
``man_track.txt``; a result is a folder with ``mask###.tif`` (one per
ground-truth frame, in the same sorted order) and ``res_track.txt``, both
``L B E P`` lines (label, first frame, last frame, parent or 0). Masks are
matched to ground truth when they cover more than half of a ground-truth
cell (the Challenge's rule). A result the Challenge's checks reject (a label
in a mask but not in ``res_track.txt``, an empty frame, ...) is reported
invalid, with the checks' messages, and has no TRA or DET.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from livecell.evaluation.errors import require


@dataclass(frozen=True, slots=True)
class CtcScores:
    position: str
    valid: bool
    tra: float | None
    det: float | None
    aogm: float | None
    problems: tuple[str, ...]


def score_ctc(position: str, truth_sequence: Path, result: Path) -> CtcScores:
    """TRA and DET of ``result`` against ``truth_sequence`` (the folder holding ``TRA/``)."""
    ctc = require("ctc_metrics.scripts.evaluate")

    problems: list[str] = []
    # py-ctcmetrics reports invalid results as UserWarnings and prints progress to
    # stdout; both are captured here and turned into this result's ``problems``.
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("always")
        try:
            comp_tracks, ref_tracks, traj, segm, _, is_valid = ctc.load_data(
                str(result), str(truth_sequence), True, False, threads=1
            )
            results = ctc.calculate_metrics(
                comp_tracks, ref_tracks, traj, segm, ["Valid", "DET", "TRA"], is_valid
            )
        except (AssertionError, ValueError, IndexError, OSError) as exc:
            problems.append(f"{type(exc).__name__}: {exc}")
            results = {"Valid": 0}
    valid = bool(results.get("Valid")) and not problems
    problems += [str(w.message) for w in caught]
    tra = results.get("TRA")
    det = results.get("DET")
    aogm = results.get("AOGM")
    return CtcScores(
        position=position,
        valid=valid,
        tra=float(tra) if valid and tra is not None else None,
        det=float(det) if valid and det is not None else None,
        aogm=float(aogm) if valid and aogm is not None else None,
        problems=tuple(problems),
    )
