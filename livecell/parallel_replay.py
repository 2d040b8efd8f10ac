"""``livecell replay --workers N``: the positions of an archive replayed in N processes.

Every analysis stage keeps its state per position and derives events only from that
position's frames, so positions split across processes give the same events, with the
same ids, as one process. The positions found under the folder (the source's path
rule) are dealt round-robin, in name order, to the workers; files whose path names no
position go to the first worker, which reports them as rejected.

Each worker runs the ordinary single-process :func:`livecell.daemon.replay` over its
share, into an events file and a tracks file of its own; the parent then appends them
to the real files, worker by worker, skipping event ids the events file already holds
(so the file stays exactly-once). Within a position, events keep their order.
Workers start with ``spawn`` (no forked threads or ONNX Runtime sessions), and the
config travels to them as JSON.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from livecell.config import Config
from livecell.errors import RejectedFrame
from livecell.frames import FrameKey
from livecell.pipeline import RunSummary
from livecell.sinks import EventLog
from livecell.stream.paths import key_from_path


@dataclass(frozen=True, slots=True)
class PositionShare:
    """The positions one worker replays, and whether it takes files with no position."""

    positions: frozenset[str]
    unkeyed: bool = False

    def owns(self, key: FrameKey | None) -> bool:
        return self.unkeyed if key is None else key.position in self.positions


def positions_in(folder: Path, config: Config) -> list[str]:
    """The positions the source's path rule finds under ``folder``, sorted."""
    pattern = re.compile(config.source.path_regex)
    globs = tuple(p.lower() for p in config.source.patterns)
    found: set[str] = set()
    for path in folder.rglob("*"):
        if not any(fnmatch.fnmatchcase(path.name.lower(), g) for g in globs):
            continue
        try:
            key = key_from_path(
                path, root=folder, pattern=pattern, acquisition=config.source.acquisition
            )
        except RejectedFrame:
            continue
        found.add(key.position)
    return sorted(found)


def shares(positions: list[str], workers: int) -> list[PositionShare]:
    """``positions`` dealt round-robin to at most ``workers`` shares; the first takes unkeyed."""
    count = max(1, min(workers, len(positions)))
    return [PositionShare(frozenset(positions[i::count]), unkeyed=(i == 0)) for i in range(count)]


def replay_in_workers(config: Config, folder: Path, events_path: Path, workers: int) -> RunSummary:
    """Replay ``folder`` with its positions spread over ``workers`` processes."""
    parts = shares(positions_in(folder, config), workers)
    tracks_path = config.sinks.tracks if config.analysis.mode == "nanowell" else None
    with tempfile.TemporaryDirectory(prefix="livecell-replay-workers-") as tmp:
        jobs = [
            (
                _share_config(config, Path(tmp) / f"worker{i}", tracks_path is not None),
                str(folder),
                sorted(part.positions),
                part.unkeyed,
            )
            for i, part in enumerate(parts)
        ]
        with ProcessPoolExecutor(len(jobs), mp_context=get_context("spawn")) as pool:
            results = list(pool.map(_replay_share, *zip(*jobs, strict=True)))
        summary = RunSummary()
        summary.events_by_kind = _merge_events(
            [Path(tmp) / f"worker{i}" / "events.jsonl" for i in range(len(jobs))], events_path
        )
        if tracks_path is not None:
            _merge_tracks(
                [Path(tmp) / f"worker{i}" / "tracks.csv" for i in range(len(jobs))], tracks_path
            )
    for latencies, error, failures, first_failure in results:
        summary.frame_latencies_s.extend(latencies)
        if error and summary.source_error is None:
            summary.source_error = RuntimeError(error)
        summary.analysis_failures += failures
        summary.first_analysis_failure = summary.first_analysis_failure or first_failure
    return summary


def _share_config(config: Config, folder: Path, tracks: bool) -> str:
    """The config a worker runs, as JSON: its own events and tracks files under ``folder``."""
    sinks = {"events": folder / "events.jsonl", "tracks": folder / "tracks.csv" if tracks else None}
    return config.model_copy(
        update={"sinks": config.sinks.model_copy(update=sinks)}
    ).model_dump_json()


def _replay_share(
    config_json: str, folder: str, positions: list[str], unkeyed: bool
) -> tuple[list[float], str, int, str]:
    """One worker: the ordinary replay of its share. Returns frame latencies, any source
    error, and how many frames' analysis failed (with the first failure)."""
    from livecell.daemon import replay
    from livecell.logs import configure_logging

    configure_logging()
    config = Config.model_validate_json(config_json)
    share = PositionShare(frozenset(positions), unkeyed)
    summary = replay(config, Path(folder), config.sinks.events, owns=share.owns)
    error = "" if summary.source_error is None else repr(summary.source_error)
    return (
        summary.frame_latencies_s,
        error,
        summary.analysis_failures,
        summary.first_analysis_failure,
    )


def _merge_events(parts: list[Path], events_path: Path) -> dict[str, int]:
    """Append the workers' events that ``events_path`` lacks; return the counts by kind."""
    log = EventLog(events_path)
    try:
        seen = set(log.ids_after(0))
        counts: dict[str, int] = {}
        for part in parts:
            if not part.exists():
                continue
            fresh = []
            with part.open(encoding="utf-8") as f:
                for line in f:
                    record = json.loads(line)
                    if record["event_id"] in seen:
                        continue
                    seen.add(record["event_id"])
                    counts[record["kind"]] = counts.get(record["kind"], 0) + 1
                    fresh.append(record)
            log.append(fresh)
        log.sync()
        return counts
    finally:
        log.close()


def _merge_tracks(parts: list[Path], tracks_path: Path) -> None:
    """Append the workers' tracks rows (their headers dropped) to ``tracks_path``."""
    from livecell.sinks.tracks_csv import TracksFile

    tracks = TracksFile(tracks_path)  # locked while open; the header, if the file is new
    try:
        for part in parts:
            if part.exists():
                tracks.append_rows_of(part)
    finally:
        tracks.close()
