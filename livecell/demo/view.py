"""The demo's terminal view: event records in, lines of text out.

Pure functions, no I/O: ``event_line`` gives one row per interesting event
(columns: clock, frame, position, well, track(s), what happened, latency),
``progress_line`` the frames-done line, ``summary_lines`` the closing report.
Colours are ANSI escapes, only when asked for (the command asks on a terminal).
"""

from __future__ import annotations

import math
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SHOWN_KINDS = frozenset(
    {"cell_type", "death", "early_necroptosis", "contact_start", "contact_end", "rejected"}
)

_COLOURS = {
    "death": "\x1b[1;31m",  # bold red
    "early_necroptosis": "\x1b[1;35m",  # bold magenta
    "cell_type": "\x1b[36m",  # cyan
    "contact_start": "\x1b[32m",  # green
    "contact_end": "\x1b[2;32m",  # dim green
    "rejected": "\x1b[33m",  # yellow
}
_RESET = "\x1b[0m"
_WHAT_WIDTH = 44


def header_line() -> str:
    return _row("time", "frame", "position", "well", "track(s)", "what happened", "latency")


def event_line(record: Mapping[str, Any], *, colour: bool = False) -> str | None:
    """One row for a shown kind (``SHOWN_KINDS``); ``None`` for any other event."""
    kind = str(record.get("kind", ""))
    if kind not in SHOWN_KINDS:
        return None
    what = describe(record)
    if colour:
        what = f"{_COLOURS[kind]}{what:<{_WHAT_WIDTH}}{_RESET}"
    return _row(
        clock(record.get("emitted_at")),
        _text(record.get("t")),
        _text(record.get("position")),
        _text(record.get("well")),
        tracks_text(record),
        what,
        seconds(record.get("latency_s")),
    )


def describe(record: Mapping[str, Any]) -> str:
    """What happened, in words: ``death: apoptosis from t=12 (p 0.93)``."""
    kind = record.get("kind")
    confidence = _confidence(record.get("confidence"))
    if kind == "cell_type":
        return f"cell type: {record.get('cell_type', '?')}{confidence}"
    if kind == "death":
        return f"DEATH: {record.get('pathway', 'death')} from t={record.get('onset_t', '?')}" + (
            confidence
        )
    if kind == "early_necroptosis":
        return f"early necroptosis from t={record.get('onset_t', '?')}{confidence}"
    if kind == "contact_start":
        return "contact starts"
    if kind == "contact_end":
        return "contact ends"
    if kind == "rejected":
        return f"file rejected: {record.get('reason', '?')}"
    return str(kind)


def tracks_text(record: Mapping[str, Any]) -> str:
    """``12`` for one track, ``12+15`` for a pair, ``-`` for none."""
    tracks = record.get("tracks")
    if isinstance(tracks, list | tuple) and tracks:
        return "+".join(str(t) for t in tracks)
    track = record.get("track")
    return "-" if track is None else str(track)


def progress_line(
    done: int, total: int, last_latency_s: float | None, interval_s: float, *, colour: bool = False
) -> str:
    """``frames 12/40 analysed, last frame 0.31 s after it was written (interval 0.50 s)``."""
    text = f"frames {done}/{total} analysed"
    if last_latency_s is not None:
        text += f", last frame {last_latency_s:.2f} s after it was written"
        if interval_s > 0:
            text += f" (interval {interval_s:.2f} s)"
    if colour and last_latency_s is not None and interval_s > 0:
        tint = "\x1b[32m" if last_latency_s <= interval_s else "\x1b[33m"
        return f"{tint}{text}{_RESET}"
    return text


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) by linear interpolation; ``None`` when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class DemoSummary:
    """What the demo reports when it ends."""

    frames_expected: int
    frames_done: int
    events_by_kind: Mapping[str, int]
    latencies_s: Sequence[float]
    interval_s: float
    out_dir: Path
    events_path: Path
    tracks_path: Path
    ground_truth: Path
    stopped_early: bool = False
    problems: Sequence[str] = field(default_factory=tuple)


def summary_lines(summary: DemoSummary) -> list[str]:
    s = summary
    ending = "stopped early" if s.stopped_early else "done"
    counts = ", ".join(f"{kind} {n}" for kind, n in sorted(s.events_by_kind.items()))
    lines = [
        f"livecell demo {ending}:",
        f"  frames        {s.frames_done} of {s.frames_expected} analysed",
        f"  events        {counts or 'none'}",
        f"  latency       {latency_text(s.latencies_s, s.interval_s)}",
        f"  events file   {s.events_path}",
        f"  tracks file   {s.tracks_path}",
        f"  ground truth  {s.ground_truth}",
        f"  score it      {evaluate_command(s)}",
        f"  folder kept   {s.out_dir}",
    ]
    lines += [f"  problem       {p}" for p in s.problems]
    return lines


def latency_text(latencies_s: Sequence[float], interval_s: float) -> str:
    """``p50 0.31 s, p99 0.45 s per frame (interval 0.50 s: within it)``."""
    p50, p99 = percentile(latencies_s, 50), percentile(latencies_s, 99)
    if p50 is None or p99 is None:
        return "no frames analysed"
    text = f"p50 {p50:.2f} s, p99 {p99:.2f} s per frame, written to analysed"
    if interval_s > 0:
        verdict = "within it" if p99 <= interval_s else "over it: the analysis fell behind"
        text += f" (interval {interval_s:.2f} s: p99 {verdict})"
    return text


def evaluate_command(summary: DemoSummary) -> str:
    return shlex.join(
        [
            "livecell",
            "evaluate",
            str(summary.ground_truth),
            "--events",
            str(summary.events_path),
            "--tracks",
            str(summary.tracks_path),
        ]
    )


def clock(unix_s: object) -> str:
    """``HH:MM:SS`` local time of a Unix time; ``-`` when missing."""
    if not isinstance(unix_s, int | float) or isinstance(unix_s, bool):
        return "-"
    return time.strftime("%H:%M:%S", time.localtime(unix_s))


def seconds(value: object) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    return f"{value:.2f} s"


def _confidence(value: object) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return ""
    return f" (p {value:.2f})"


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def _row(
    clock_text: str, t: str, position: str, well: str, tracks: str, what: str, latency: str
) -> str:
    return (
        f"{clock_text:<8}  {t:>5}  {position:<8}  {well:<8}  {tracks:<11}  "
        f"{what:<{_WHAT_WIDTH}}  {latency:>7}"
    )
