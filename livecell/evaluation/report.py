"""The scorer's result: one frozen ``Report``, its JSON form and its printed table.

A section is ``None`` when it was not scored (its ground truth or its input is
missing, or neither side has anything to score); ``notes`` says why. In JSON,
``NaN`` (a ratio with nothing to divide by) is ``null``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from livecell.evaluation.cell_types import CellTypeReport
from livecell.evaluation.contacts import ContactReport
from livecell.evaluation.ctc import CtcScores
from livecell.evaluation.deaths import ONSET_TOLERANCE_FRAMES, DeathReport
from livecell.evaluation.patches import PatchReport
from livecell.evaluation.stats import FrameStats, ratio
from livecell.evaluation.tracking import MotScores, TrackingReport

SCHEMA: Final = "livecell.evaluation/1"
_MAX_WELL_ROWS: Final = 12


@dataclass(frozen=True)
class Report:
    ground_truth: str
    inputs: tuple[tuple[str, str], ...]
    patches: PatchReport | None = None
    tracking: TrackingReport | None = None
    ctc: tuple[CtcScores, ...] | None = None
    deaths: DeathReport | None = None
    contacts: ContactReport | None = None
    cell_types: CellTypeReport | None = None
    event_counts: tuple[tuple[str, int], ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = plain(self)
        out["inputs"] = dict(self.inputs)
        out["event_counts"] = dict(self.event_counts)
        return {"schema": SCHEMA, **out}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"


def plain(value: Any) -> Any:
    """``value`` as JSON-ready Python: dataclasses to dicts, tuples to lists, NaN to ``None``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- the printed table ------------------------------------------------------------------


def _n(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _signed(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.2f}"


def _grid(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    lines = []
    for row in (header, *rows):
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append(indent + "  ".join(cells).rstrip())
    return lines


def _stats(stats: FrameStats) -> str:
    if not stats.n:
        return "n/a"
    return (
        f"mean {_signed(stats.mean)}, median {_signed(stats.median)}, "
        f"mean |.| {stats.mean_abs:.2f} (n={stats.n}, range {stats.min}..{stats.max})"
    )


def _patches(r: PatchReport) -> list[str]:
    lines = [
        f"Patch states: {r.cell_patches} cell patches in {r.frames_scored} frames"
        + (
            f" ({r.frames_without_event} frames without an event, not scored)"
            if r.frames_without_event
            else ""
        ),
        f"  accuracy {_n(r.accuracy)}   balanced accuracy {_n(r.balanced_accuracy)}   "
        f"macro F1 {_n(r.macro_f1)}   macro AUROC {_n(r.macro_auroc)}"
        + (f" ({r.auroc_patches} patches)" if r.macro_auroc is not None else ""),
    ]
    lines += _grid(
        ("class", "precision", "recall", "F1", "support", "predicted", "AUROC"),
        [
            (
                c.name,
                _n(c.precision),
                _n(c.recall),
                _n(c.f1),
                str(c.support),
                str(c.predicted),
                _n(c.auroc),
            )
            for c in r.per_class
        ],
    )
    lines.append(
        f"  empty: {r.empty_patches} patches, {r.empty_skipped} skipped, {r.empty_called} given a "
        f"state; cell patches skipped: {r.cells_skipped}"
    )
    lines.append("  confusion (rows: truth, columns: predicted):")
    short = [label[:12] for label in r.labels]
    lines += _grid(
        ("", *short), [(short[i], *map(str, row)) for i, row in enumerate(r.confusion)], "    "
    )
    return lines


def _mot_row(name: str, s: MotScores) -> tuple[str, ...]:
    return (
        name,
        str(s.wells),
        _n(s.mota),
        _n(s.idf1),
        str(s.num_switches),
        str(s.num_misses),
        str(s.num_false_positives),
        str(s.num_objects),
        _n(s.mean_distance_px, 2),
    )


_MOT_HEADER = ("", "wells", "MOTA", "IDF1", "switches", "misses", "false", "truth rows", "dist px")


def _tracking(r: TrackingReport) -> list[str]:
    lines = [f"Tracking (centroids matched within {r.max_distance_px:g} px, same well and frame)"]
    rows = [_mot_row("overall", r.overall)]
    unit = "well" if any(w.well for w in r.per_well) else "field"  # no wells: holotomography
    rows += [_mot_row(f"{b.cells} cells/{unit}", b.scores) for b in r.by_cells]
    lines += _grid(_MOT_HEADER, rows)
    if len(r.per_well) > 1:
        worst = sorted(
            r.per_well,
            key=lambda w: (
                math.isnan(w.scores.idf1),
                w.scores.idf1,
                w.scores.mota,
                w.position,
                w.well,
            ),
        )
        shown = worst[:_MAX_WELL_ROWS]
        more = len(r.per_well) - len(shown)
        lines.append(
            "  per well"
            + (
                f" (the {len(shown)} lowest IDF1 of {len(r.per_well)}; all in --json)"
                if more
                else ""
            )
            + ":"
        )
        lines += _grid(
            ("position/well", "cells", "MOTA", "IDF1", "switches", "misses", "false"),
            [
                (
                    f"{w.position}/{w.well or '-'}",
                    str(w.cells),
                    _n(w.scores.mota),
                    _n(w.scores.idf1),
                    str(w.scores.num_switches),
                    str(w.scores.num_misses),
                    str(w.scores.num_false_positives),
                )
                for w in shown
            ],
            "    ",
        )
    return lines


def _ctc(results: Sequence[CtcScores]) -> list[str]:
    lines = ["Cell Tracking Challenge (py-ctcmetrics)"]
    lines += _grid(
        ("position", "valid", "TRA", "DET", "AOGM"),
        [
            (c.position, "yes" if c.valid else "NO", _n(c.tra), _n(c.det), _n(c.aogm, 1))
            for c in results
        ],
    )
    for c in results:
        for problem in c.problems[:5]:
            lines.append(f"  {c.position}: {problem}")
    return lines


def _deaths(r: DeathReport) -> list[str]:
    duplicates = f"   duplicates {r.duplicates} (other patches of matched cells)"
    lines = [
        f"Deaths (matched by {r.matching})",
        f"  truth {r.truth}   predicted {r.predicted}   detected {r.detected}   "
        f"missed {r.missed}   false {r.false}" + (duplicates if r.duplicates else ""),
        f"  recall {_n(r.recall)}   precision {_n(r.precision)}   F1 {_n(r.f1)}",
        f"  onset error, frames (predicted - truth): {_stats(r.onset_error)}",
        f"  onset within {ONSET_TOLERANCE_FRAMES} frames: {r.onsets_on_time} "
        f"({_n(r.onsets_on_time_of_detected)} of detected, "
        f"{_n(r.onsets_on_time_of_truth)} of truth)",
        f"  lead time, frames (marker_t - reported t): {_stats(r.lead_time)}",
    ]
    for p in r.lead_time_by_pathway:
        lines.append(f"    {p.pathway}: {_stats(p.lead_time)}")
    lines.append(
        f"  pathway accuracy {_n(r.pathway_accuracy)} (n={r.pathway_scored}; "
        f"{r.pathway_unspecified} said only 'death')"
    )
    if r.by_frames_seen:
        lines.append("  by frames seen, from the true onset to the acquisition's last frame:")
        lines += _grid(
            ("frames seen", "truth", "detected", "on time", "on time of truth"),
            [
                (
                    f"{b.first}+" if b.last is None else f"{b.first}-{b.last}",
                    str(b.truth),
                    str(b.detected),
                    str(b.on_time),
                    _n(ratio(b.on_time, b.truth)),
                )
                for b in r.by_frames_seen
            ],
            "    ",
        )
    return lines


def _contacts(r: ContactReport) -> list[str]:
    return [
        f"Contacts (intervals matched at IoU >= {r.min_iou:g}, same well and tracks; "
        f"contacts of a pair <= {r.gap_frames} frame(s) apart merged)",
        f"  truth {r.truth}   predicted {r.predicted}   matched {r.matched}",
        f"  precision {_n(r.precision)}   recall {_n(r.recall)}   F1 {_n(r.f1)}   "
        f"mean IoU {_n(r.mean_iou)}",
        f"  start error, frames: {_stats(r.start_error)}",
        f"  end error, frames: {_stats(r.end_error)}",
    ]


def _cell_types(r: CellTypeReport) -> list[str]:
    lines = [
        f"Cell types: {r.scored} of {r.events} events on ground-truth tracks; "
        f"{r.covered_tracks} of {r.truth_tracks} tracks typed (coverage {_n(r.coverage)})",
        f"  accuracy {_n(r.accuracy)}   balanced accuracy {_n(r.balanced_accuracy)}",
    ]
    lines += _grid(
        ("type", "events", "correct", "accuracy"),
        [(s.cell_type, str(s.events), str(s.correct), _n(s.accuracy)) for s in r.per_type],
    )
    return lines


def format_table(report: Report) -> str:
    lines = [f"livecell evaluate: {report.ground_truth}"]
    lines += [f"  {name}: {path}" for name, path in report.inputs]
    if report.event_counts:
        counts = ", ".join(f"{n} {kind}" for kind, n in report.event_counts)
        lines.append(f"  events read: {counts}")
    sections: list[list[str]] = []
    if report.patches is not None:
        sections.append(_patches(report.patches))
    if report.tracking is not None:
        sections.append(_tracking(report.tracking))
    if report.ctc is not None:
        sections.append(_ctc(report.ctc))
    if report.deaths is not None:
        sections.append(_deaths(report.deaths))
    if report.contacts is not None:
        sections.append(_contacts(report.contacts))
    if report.cell_types is not None:
        sections.append(_cell_types(report.cell_types))
    for section in sections:
        lines += ["", *section]
    if report.notes:
        lines += ["", "Notes:", *(f"  - {n}" for n in report.notes)]
    return "\n".join(lines) + "\n"
