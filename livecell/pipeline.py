"""The pipeline: source thread -> bounded queue -> one analysis worker -> events -> sinks.

States: starting (recover the events file into the journal) -> running (the
source thread fills the queue; the worker, on the calling thread, takes
batches in order) -> stopping (``stop`` set: the source is told to stop and
joined, frames already queued are finished within ``shutdown_timeout_s``) ->
closed (the stage's ``finish`` events committed, then sinks flushed and closed, each
teardown step guarded on its own).
A finite source (replay) ends the run when it returns and the queue is empty.

Exactly-once, per batch of up to ``commit_batch`` frames: derive events ->
drop ids the journal already has -> append to the events file -> fsync ->
record frames, files and event ids in the journal (committed at most every
``journal_commit_interval_s``) -> quarantine rejected files -> publish to live
sinks. A crash anywhere re-derives the same ids on restart.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from livecell.analysis import Stage
from livecell.analysis.overlay import FrameObserver, overlay_of
from livecell.errors import OutputWriteError
from livecell.events import (
    FRAME,
    REJECTED,
    Event,
    frame_event,
    rejected_event,
    stable_id,
    to_json_line,
)
from livecell.frames import Frame, FrameKey, Rejection
from livecell.journal import DoneFrame, Journal
from livecell.metrics import Metrics
from livecell.sinks import EventLog, EventSink
from livecell.stream import FrameSource
from livecell.stream.quarantine import quarantine_file

BATCH_WINDOW_S = 0.2
"""Work one commit may gather before it is fsynced: fast frames share an fsync, slow ones
do not wait for each other."""

log = structlog.get_logger("livecell.pipeline")

Item = Frame | Rejection


@dataclass
class RunSummary:
    """What one run wrote, by kind: printed at the end of ``replay`` and ``demo``."""

    events_by_kind: dict[str, int] = field(default_factory=dict)
    frame_latencies_s: list[float] = field(default_factory=list)
    source_error: BaseException | None = None
    analysis_failures: int = 0  # frames whose analysis raised (their frame event was sent)
    first_analysis_failure: str = ""

    def count(self, kind: str) -> int:
        return self.events_by_kind.get(kind, 0)


@dataclass
class _Batch:
    """What one commit gathers: events, frames done, files to quarantine afterwards."""

    events: list[Event] = field(default_factory=list)
    done: list[DoneFrame] = field(default_factory=list)
    to_quarantine: list[Rejection] = field(default_factory=list)
    keys: set[FrameKey] = field(default_factory=set)
    paths: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class PipelineSettings:
    queue_size: int
    commit_batch: int
    shutdown_timeout_s: float
    quarantine_dir: Path | None  # None: rejected files are reported, never moved (replay)
    keep_latencies: int = 100_000


@dataclass(frozen=True, slots=True)
class PipelineProgress:
    """What the heartbeat reports: frames committed this run, frames queued, and the
    latency (complete -> events on disk) of the newest committed frame, in seconds."""

    frames_done: int
    queue_depth: int
    lag_s: float


class Pipeline:
    def __init__(
        self,
        *,
        source: FrameSource,
        stage: Stage,
        journal: Journal,
        event_log: EventLog,
        sinks: Sequence[EventSink],
        metrics: Metrics,
        settings: PipelineSettings,
        heartbeat: Callable[[PipelineProgress], None] | None = None,
        observers: Sequence[FrameObserver] = (),
    ) -> None:
        self._source = source
        self._stage = stage
        self._journal = journal
        self._event_log = event_log
        self._sinks = list(sinks)
        self._metrics = metrics
        self._settings = settings
        self._queue: queue.Queue[Item] = queue.Queue(maxsize=settings.queue_size)
        self._source_stop = threading.Event()
        self._stop = threading.Event()  # run()'s: a stop request closes the batch in hand
        self.summary = RunSummary()
        # called from the analysis loop on every iteration and after every item, so
        # a stage.update that hangs stops it (systemd's watchdog: livecell.service)
        self._heartbeat = heartbeat
        self._frames_done = 0
        self._last_latency_s = 0.0
        # viewers (the dashboard): each analysed frame and the stage's overlay, by reference
        self._observers = list(observers)
        self._newest_t = _NewestT()

    def recover(self) -> int:
        """Record the events written after the journal's last commit, and the frames their
        ``frame`` events say were done (a crash between the two); return how many events."""
        offset = self._journal.events_offset()
        if self._event_log.size() < offset:
            log.warning(
                "the events file is shorter than the journal says it was: the journal is "
                "rebuilt from it, and frames whose events are gone are analysed again when "
                "they come again (files still in the watched folder do)",
                events_file=str(self._event_log.path),
                size=self._event_log.size(),
                journal_size=offset,
            )
            self._journal.forget_all()
            offset = 0
        records = list(self._event_log.records_after(offset))
        frames = [done for record in records if (done := _done_frame(record)) is not None]
        self._journal.record(
            frames=frames,
            event_ids=[record["event_id"] for record in records],
            events_offset=self._event_log.size(),
        )
        if records or self._event_log.repaired_bytes:
            log.info(
                "recovered",
                events=len(records),
                frames=len(frames),
                torn_bytes_cut=self._event_log.repaired_bytes,
            )
        return len(records)

    def run(self, stop: threading.Event) -> RunSummary:
        """Run until ``stop`` is set or a finite source is exhausted; always close sinks."""
        self._stop = stop
        self.recover()
        thread = threading.Thread(target=self._run_source, name="livecell-source", daemon=True)
        thread.start()
        failed = True  # a failed write (a full disk) stops at once: the queue would fail too
        try:
            while not stop.is_set():
                idle = not self._process_available(timeout_s=0.1)
                self._beat()
                if idle and not thread.is_alive() and self._queue.empty():
                    break
            failed = False
        finally:
            self._source_stop.set()
            thread.join(timeout=self._settings.shutdown_timeout_s)
            try:
                if not failed:
                    self._finish_queued()
                    self._commit_finish()
            finally:
                self._close()
        return self.summary

    def warm_up(self) -> float:
        """Run the stage's models once before the first frame; return the seconds it took."""
        started = time.perf_counter()
        self._stage.warm_up()
        seconds = time.perf_counter() - started
        log.info("warmed up", stage=self._stage.name, seconds=round(seconds, 3))
        return seconds

    def _beat(self) -> None:
        if self._heartbeat is None:
            return
        try:
            self._heartbeat(
                PipelineProgress(self._frames_done, self._queue.qsize(), self._last_latency_s)
            )
        except Exception:  # a broken heartbeat must not stop analysis
            log.exception("heartbeat failed")

    def _run_source(self) -> None:
        try:
            self._source.run(self._emit, self._source_stop)
        except Exception as exc:
            log.error("source failed", source=self._source.kind, error=str(exc), exc_info=True)
            self.summary.source_error = exc

    def _emit(self, item: Item) -> bool:
        while not self._source_stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
            except queue.Full:
                continue
            self._metrics.queue_depth.set(self._queue.qsize())
            return True
        return False

    def _process_available(self, timeout_s: float) -> int:
        """Analyse queued items one at a time, then commit them together; return how many.

        Each item is analysed as soon as it is taken and let go before the
        next, so a frame's pixels are freed before the commit's fsync and a
        commit never holds more than one frame in memory. A batch closes at
        ``commit_batch`` items, after ``BATCH_WINDOW_S`` of work (so a backlog of
        slow frames commits each frame as it is done, and a stop request waits for
        the frame in hand only), or when a stop is asked for. Idle, the journal is
        flushed.
        """
        work = _Batch()
        taken = 0
        closes_at = time.monotonic() + BATCH_WINDOW_S
        while taken < self._settings.commit_batch:
            if taken and (time.monotonic() >= closes_at or self._stop.is_set()):
                break
            try:
                item = self._queue.get(timeout=timeout_s if taken == 0 else 0)
            except queue.Empty:
                break
            taken += 1
            try:
                self._take_guarded(item, work)
            except OutputWriteError:  # stop, keeping the frames analysed before this one
                self._commit(work.events, work.done)
                raise
            del item
            self._beat()
        if not taken:
            self._journal.flush()
            return 0
        self._metrics.queue_depth.set(self._queue.qsize())
        self._commit(work.events, work.done)
        for rejection in work.to_quarantine:
            self._quarantine(rejection)
        return taken

    def _finish_queued(self) -> None:
        deadline = time.monotonic() + self._settings.shutdown_timeout_s
        while time.monotonic() < deadline:
            if not self._process_available(timeout_s=0):
                return
        if not self._queue.empty():
            log.warning("shutdown deadline reached", frames_left=self._queue.qsize())

    def _commit_finish(self) -> None:
        """Commit the events only the end of the run decides (``Stage.finish``); a stage
        that fails there loses those events only."""
        try:
            events = self._stage.finish()
        except OutputWriteError:
            raise
        except Exception:
            self._metrics.stage_errors.labels(self._stage.name).inc()
            log.exception("finishing the analysis failed", stage=self._stage.name)
            return
        if events:
            self._commit(events, [])

    def _take_guarded(self, item: Item, work: _Batch) -> None:
        try:
            self._take(item, work)
        except OutputWriteError:  # a full disk: every later frame would fail the same way
            raise
        except Exception as exc:  # a bug on one frame must not stop the daemon
            log.exception("frame handling failed", item=type(item).__name__)
            work.events.append(rejected_event(_internal_error(item, exc)))

    def _take(self, item: Item, work: _Batch) -> None:
        """Derive one item's events into ``work``; duplicates and rejections become ``rejected``."""
        if isinstance(item, Frame):
            if item.path is not None and (
                item.path in work.paths or self._journal.is_file_done(item.path)
            ):
                return  # the same file seen complete twice: analysed once, never moved
            if item.key in work.keys or self._journal.is_frame_done(item.key):
                item = _duplicate(item)
            else:
                work.keys.add(item.key)
                if item.path is not None:
                    work.paths.add(item.path)
                work.events += self._analyse(item)
                work.done.append(DoneFrame(item.key, item.source, item.path, time.time()))
                return
        work.events.append(rejected_event(item))
        log.warning(
            "rejected",
            **_key_fields(item),
            reason=item.reason,
            detail=item.detail,
            path=item.path,
            header=item.header,
        )
        if item.quarantine and item.path is not None:
            work.to_quarantine.append(item)

    def _analyse(self, frame: Frame) -> list[Event]:
        key = frame.key
        events = [frame_event(frame)]
        if not self._newest_t.advance(key):
            log.warning(
                "frame came after a later one of its position: not analysed, since the "
                "stage takes a position's frames in order; its frame event is written",
                **_key_fields(frame),
            )
            return events
        started = time.perf_counter()
        try:
            events += self._stage.update(frame)
        except OutputWriteError:
            raise
        except Exception as exc:
            self._metrics.stage_errors.labels(self._stage.name).inc()
            self.summary.analysis_failures += 1
            if not self.summary.first_analysis_failure:
                self.summary.first_analysis_failure = f"{key}: {type(exc).__name__}: {exc}"
            log.exception(
                "analysis failed; frame event still sent",
                acquisition=key.acquisition,
                position=key.position,
                t=key.t,
                stage=self._stage.name,
            )
        self._metrics.stage_seconds.labels("analysis").observe(time.perf_counter() - started)
        self._observe(frame)
        return events

    def _observe(self, frame: Frame) -> None:
        """Hand the frame and its overlay to the observers (they store references only)."""
        if not self._observers:
            return
        try:
            overlay = overlay_of(self._stage, frame.key)
        except Exception:  # a viewer's snapshot must never cost a frame its events
            log.exception("overlay failed", stage=self._stage.name)
            overlay = None
        for observer in self._observers:
            try:
                observer.observe_frame(frame, overlay)
            except Exception:
                log.exception("frame observer failed", observer=type(observer).__name__)

    def _commit(self, events: list[Event], done: list[DoneFrame]) -> None:
        fresh: list[Event] = []
        repeated: list[Event] = []
        seen: set[str] = set()
        for event in events:
            if event.event_id not in seen and not self._journal.has_event(event.event_id):
                seen.add(event.event_id)
                fresh.append(event)
            else:
                repeated.append(event)
        emitted_at = time.time()
        fresh, records, lines = _writable(fresh, emitted_at)
        started = time.perf_counter()
        if self._event_log.reopen_if_deleted():
            log.error(
                "the events file was deleted or moved away while the daemon ran: a new one "
                "is started, and the journal is emptied so that a restart analyses again the "
                "files still in the watched folder",
                events_file=str(self._event_log.path),
            )
            self._journal.forget_all(while_running=True)
        self._event_log.append_lines(lines)
        offset = self._event_log.sync()
        synced = time.perf_counter()
        self._journal.record(frames=done, event_ids=seen, events_offset=offset)
        self._metrics.stage_seconds.labels("events_file").observe(synced - started)
        self._metrics.stage_seconds.labels("journal").observe(time.perf_counter() - synced)
        self._count(fresh, records)
        self._count_repeated_rejections(repeated)
        for sink in self._sinks:
            try:
                sink.publish(records)
            except Exception:
                log.exception("sink failed", sink=sink.name)

    def _count(self, fresh: list[Event], records: list[dict[str, Any]]) -> None:
        now = time.time()
        last_by_frame: dict[tuple[str | None, str | None, int | None], float] = {}
        for event, record in zip(fresh, records, strict=True):
            self._metrics.events.labels(event.kind).inc()
            self.summary.events_by_kind[event.kind] = self.summary.count(event.kind) + 1
            if event.kind == FRAME:
                self._metrics.frames.labels(record["source"]).inc()
                last_by_frame[(event.acquisition, event.position, event.t)] = event.completed_at
                log.debug(
                    "frame",
                    acquisition=event.acquisition,
                    position=event.position,
                    t=event.t,
                    latency_s=record["latency_s"],
                )
            elif event.kind == REJECTED:
                self._metrics.rejected.labels(record["reason"]).inc()
        self._frames_done += len(last_by_frame)
        for completed_at in last_by_frame.values():
            latency = self._last_latency_s = now - completed_at
            self._metrics.frame_latency.observe(latency)
            if len(self.summary.frame_latencies_s) < self._settings.keep_latencies:
                self.summary.frame_latencies_s.append(latency)

    def _count_repeated_rejections(self, repeated: list[Event]) -> None:
        """A bad input received again (a ZeroMQ sender re-sending it) has its event written
        once, under the same id, but is counted each time: a sender stuck on a bad
        message shows as a rising rejection rate, not as one rejection."""
        for event in repeated:
            if event.kind == REJECTED:
                self._metrics.rejected.labels(str(event.fields["reason"])).inc()

    def _quarantine(self, rejection: Rejection) -> None:
        if rejection.path is None or self._settings.quarantine_dir is None:
            return
        try:
            moved = quarantine_file(
                Path(rejection.path),
                quarantine_dir=self._settings.quarantine_dir,
                reason=rejection.reason,
                detail=rejection.detail,
            )
            log.info(
                "quarantined",
                **_key_fields(rejection),
                path=rejection.path,
                to=str(moved),
                reason=rejection.reason,
            )
        except OSError as exc:
            log.error("cannot quarantine", path=rejection.path, error=str(exc))

    def _close(self) -> None:
        for name, close in [
            ("stage", self._stage.close),
            ("events file", self._event_log.close),
        ] + [(sink.name, sink.close) for sink in self._sinks]:
            try:
                close()
            except OutputWriteError as exc:  # the full disk already stopping the run
                log.error("close failed", what=name, error=str(exc))
            except Exception:
                log.exception("close failed", what=name)


class _NewestT:
    """The newest t analysed per position, for the last ``POSITIONS_KEPT`` positions."""

    POSITIONS_KEPT = 4096

    def __init__(self) -> None:
        self._by_position: OrderedDict[tuple[str, str], int] = OrderedDict()

    def advance(self, key: FrameKey) -> bool:
        """Record ``key.t`` if it is newer than its position's newest; False if not."""
        position = (key.acquisition, key.position)
        newest = self._by_position.pop(position, None)
        if newest is not None and key.t <= newest:
            self._by_position[position] = newest
            return False
        self._by_position[position] = key.t
        if len(self._by_position) > self.POSITIONS_KEPT:
            self._by_position.popitem(last=False)
        return True


def _key_parts(key: FrameKey | None) -> tuple[object, ...]:
    """A key as separate id parts: ``("a/b", "c")`` and ``("a", "b/c")`` never meet."""
    return (None,) if key is None else (key.acquisition, key.position, key.t)


def _done_frame(record: dict[str, Any]) -> DoneFrame | None:
    """The frame a ``frame`` event in the events file says was done; None otherwise."""
    acquisition, position, t = record.get("acquisition"), record.get("position"), record.get("t")
    if record.get("kind") != FRAME or not isinstance(t, int):
        return None
    if not isinstance(acquisition, str) or not isinstance(position, str):
        return None
    path, done_at = record.get("path"), record.get("emitted_at")
    return DoneFrame(
        FrameKey(acquisition, position, t),
        str(record.get("source", "")),
        path if isinstance(path, str) else None,
        float(done_at) if isinstance(done_at, int | float) else 0.0,
    )


def _writable(
    events: list[Event], emitted_at: float
) -> tuple[list[Event], list[dict[str, Any]], list[str]]:
    """The events, their records and their JSON lines, where an event that cannot be
    written as JSON (a non-finite number a bug let through) is replaced by an
    ``internal_error`` rejection naming it: one bad value must not stop the daemon, nor,
    at every restart, again."""
    kept: list[Event] = []
    records: list[dict[str, Any]] = []
    lines: list[str] = []
    for event in events:
        record = event.to_record(emitted_at)
        try:
            line = to_json_line(record)
        except (TypeError, ValueError) as exc:
            log.error(
                "an event could not be written as JSON; an internal_error rejection stands for it",
                kind=event.kind,
                acquisition=event.acquisition,
                position=event.position,
                t=event.t,
                error=str(exc),
            )
            event = rejected_event(_unwritable(event, exc))
            record = event.to_record(emitted_at)
            line = to_json_line(record)
        kept.append(event)
        records.append(record)
        lines.append(line)
    return kept, records, lines


def _unwritable(event: Event, exc: Exception) -> Rejection:
    acquisition, position, t = event.acquisition, event.position, event.t
    return Rejection(
        reason="internal_error",
        detail=f"its {event.kind} event could not be written as JSON: {exc}",
        completed_at=event.completed_at,
        fingerprint=stable_id("unwritable", event.event_id),
        key=FrameKey(acquisition, position, t)
        if acquisition is not None and position is not None and t is not None
        else None,
        quarantine=False,
    )


def _duplicate(frame: Frame) -> Rejection:
    return Rejection(
        reason="duplicate",
        detail=f"frame {frame.key} was already analysed",
        completed_at=frame.completed_at,
        fingerprint=stable_id(*_key_parts(frame.key), frame.path or frame.source),
        key=frame.key,
        path=frame.path,
        header=frame.header,
        quarantine=frame.path is not None and not frame.in_dataset,
    )


def _internal_error(item: Item, exc: Exception) -> Rejection:
    key = item.key
    return Rejection(
        reason="internal_error",
        detail=f"{type(exc).__name__}: {exc}",
        completed_at=item.completed_at,
        fingerprint=stable_id("internal_error", *_key_parts(key), item.path),
        key=key,
        path=item.path,
        header=item.header,
        quarantine=False,
    )


def _key_fields(item: Item) -> dict[str, object]:
    """acquisition, position and t for a log line, as far as they are known."""
    key = item.key
    if key is None:
        return {"acquisition": None, "position": None, "t": None}
    return {"acquisition": key.acquisition, "position": key.position, "t": key.t}
