"""PNGs of a report (``--plot DIR``): confusion matrices and timelines.

Drawn on ``matplotlib.figure.Figure`` with the Agg canvas, never through
pyplot, so no global backend or figure state is touched. Files:

- ``confusion_patch_states.png``, ``confusion_cell_types.png``,
  ``confusion_death_pathways.png``: counts, rows the truth, columns the
  prediction, shaded by the row's fraction;
- ``timeline_patch_states_<position>.png``: patches per state over time,
  truth solid, prediction dashed;
- ``timeline_deaths_<position>.png``: per cell that died or was said to, the
  true onset, marker and predicted onset / report frame; ground-truth and
  predicted contact intervals below.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from livecell.evaluation.report import Report


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "_"


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=110)
    return path


def confusion_png(
    labels: Sequence[str], matrix: Sequence[Sequence[int]], title: str, path: Path
) -> Path:
    counts = np.asarray(matrix, dtype=np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    fraction = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = 1.6 + 0.75 * len(labels)
    figure = Figure(figsize=(size + 1.2, size), layout="constrained")
    ax = figure.add_subplot()
    image = ax.imshow(fraction, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(labels)), labels=list(labels), rotation=35, ha="right")
    ax.set_yticks(range(len(labels)), labels=list(labels))
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    ax.set_title(title)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                str(int(counts[i, j])),
                ha="center",
                va="center",
                color="white" if fraction[i, j] > 0.6 else "black",
                fontsize=8,
            )
    figure.colorbar(image, ax=ax, label="fraction of the true row")
    return _save(figure, path)


def _patch_timelines(report: Report, folder: Path) -> list[Path]:
    patches = report.patches
    if patches is None or not patches.timeline:
        return []
    out = []
    colors = [f"C{k}" for k in range(len(patches.labels))]
    for position in sorted({f.position for f in patches.timeline}):
        frames = [f for f in patches.timeline if f.position == position]
        t = [f.t for f in frames]
        truth = np.array([f.truth for f in frames])
        predicted = np.array([f.predicted for f in frames])
        figure = Figure(figsize=(8, 4.5), layout="constrained")
        ax = figure.add_subplot()
        for k, label in enumerate(patches.labels):
            if truth[:, k].any() or predicted[:, k].any():
                ax.plot(t, truth[:, k], color=colors[k], label=f"{label} (truth)")
                ax.plot(t, predicted[:, k], color=colors[k], linestyle="--")
        ax.set_xlabel("frame")
        ax.set_ylabel("patches")
        ax.set_title(f"patch states over time, position {position} (dashed: predicted)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        out.append(_save(figure, folder / f"timeline_patch_states_{_safe(position)}.png"))
    return out


def _death_timelines(report: Report, folder: Path) -> list[Path]:
    deaths, contacts = report.deaths, report.contacts
    positions: set[str] = set()
    if deaths is not None:
        positions |= {m.position for m in deaths.matches}
        positions |= {d.position for d in deaths.missed_deaths}
        positions |= {e.position for e in deaths.false_deaths}
    if contacts is not None:
        positions |= {m.truth.position for m in contacts.matches}
        positions |= {i.position for i in (*contacts.missed, *contacts.false)}
    out = []
    for position in sorted(positions):
        figure = Figure(figsize=(9, 6), layout="constrained")
        top, bottom = figure.subplots(2, 1, height_ratios=(2, 1), sharex=True)
        rows: list[str] = []
        if deaths is not None:
            for m in (m for m in deaths.matches if m.position == position):
                y = len(rows)
                rows.append(f"{m.well or '-'}/{m.truth_track}")
                top.plot([m.truth_onset_t], [y], "kx")
                top.plot([m.marker_t], [y], "r|", markersize=12)
                top.plot([m.predicted_onset_t], [y], "bo", fillstyle="none")
                top.plot([m.reported_t], [y], "b^")
            for d in (d for d in deaths.missed_deaths if d.position == position):
                y = len(rows)
                rows.append(f"{d.well or '-'}/{d.track} missed")
                top.plot([d.onset_t], [y], "kx")
                top.plot([d.marker_t], [y], "r|", markersize=12)
            for e in (e for e in deaths.false_deaths if e.position == position):
                y = len(rows)
                where = f"{e.well}/{e.track}" if e.track is not None else f"patch {e.patch}"
                rows.append(f"{where} false")
                top.plot([e.onset_t], [y], "o", color="orange", fillstyle="none")
                top.plot([e.t], [y], "^", color="orange")
        top.set_yticks(range(len(rows)), labels=rows, fontsize=7)
        top.set_title(
            f"deaths, position {position}: x true onset, | marker, "
            "o predicted onset, ^ reported (orange: false)",
            fontsize=9,
        )
        top.set_xlabel("frame")
        labels: list[str] = []
        if contacts is not None:
            truth_intervals = [m.truth for m in contacts.matches] + list(contacts.missed)
            predicted_intervals = [m.predicted for m in contacts.matches] + list(contacts.false)
            rows_of: dict[tuple[str, str], int] = {}
            for interval, offset, color, width in (
                *((i, -0.1, "g", 5) for i in truth_intervals),
                *((i, 0.15, "b", 2) for i in predicted_intervals),
            ):
                if interval.position != position:
                    continue
                key = (interval.well, f"{interval.tracks[0]}-{interval.tracks[1]}")
                y = rows_of.setdefault(key, len(rows_of))
                # Inclusive frames: a one-frame contact is a short bar, not a point.
                bottom.plot(
                    [interval.start_t - 0.4, interval.end_t + 0.4],
                    [y + offset] * 2,
                    color=color,
                    linewidth=width,
                )
            labels = [f"{well or '-'} {pair}" for well, pair in rows_of]
        bottom.set_yticks(range(len(labels)), labels=labels, fontsize=7)
        bottom.set_title("contacts: green truth, blue predicted", fontsize=9)
        bottom.set_xlabel("frame")
        out.append(_save(figure, folder / f"timeline_deaths_{_safe(position)}.png"))
    return out


def write_plots(report: Report, folder: Path) -> list[Path]:
    """Write every plot the report has data for into ``folder`` (created); return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    if report.patches is not None:
        out.append(
            confusion_png(
                report.patches.labels,
                report.patches.confusion,
                "patch states",
                folder / "confusion_patch_states.png",
            )
        )
    if report.cell_types is not None and report.cell_types.scored:
        out.append(
            confusion_png(
                report.cell_types.labels,
                report.cell_types.confusion,
                "cell types",
                folder / "confusion_cell_types.png",
            )
        )
    if report.deaths is not None and report.deaths.matches:
        out.append(
            confusion_png(
                report.deaths.pathway_labels,
                report.deaths.pathway_confusion,
                "death pathways (matched deaths)",
                folder / "confusion_death_pathways.png",
            )
        )
    out += _patch_timelines(report, folder)
    out += _death_timelines(report, folder)
    return out
