"""The journal behind exactly-once, alone and together with the events file.

The second half drives a real ``Pipeline`` in-process (real SQLite, real files)
over the crash windows a ``kill -9`` can leave, deterministically: events
written but not committed, frames committed whose events are on disk.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from disk import file_size_limit

from livecell.analysis import FramesOnly
from livecell.errors import OutputWriteError
from livecell.events import Event, frame_event
from livecell.frames import Frame, FrameKey, Rejection
from livecell.journal import DoneFrame, Journal
from livecell.metrics import Metrics
from livecell.pipeline import BATCH_WINDOW_S, Pipeline, PipelineSettings
from livecell.sinks import EventLog
from livecell.stream import Emit

KEY = FrameKey("acq", "Pos0", 3)


def test_a_new_journal_is_empty(tmp_path: Path) -> None:
    journal = Journal.in_state_dir(tmp_path / "state")
    assert journal.events_offset() == 0
    assert journal.frame_count() == 0
    assert not journal.is_frame_done(KEY)
    assert not journal.has_event("e1")
    assert not journal.is_file_done("/data/Pos0/t3.tif")
    journal.close()


def test_commits_survive_reopening(tmp_path: Path) -> None:
    journal = Journal.in_state_dir(tmp_path)
    journal.record(
        frames=[
            DoneFrame(KEY, "watch", "/data/Pos0/t3.tif", 1.5),
            DoneFrame(FrameKey("acq", "Pos1", 0), "zmq", None, 2.5),
        ],
        event_ids=["e1", "e2"],
        events_offset=1234,
    )
    journal.close()

    reopened = Journal.in_state_dir(tmp_path)
    assert reopened.is_frame_done(KEY)
    assert reopened.is_frame_done(FrameKey("acq", "Pos1", 0))
    assert not reopened.is_frame_done(FrameKey("acq", "Pos0", 4))
    assert not reopened.is_frame_done(FrameKey("other", "Pos0", 3))
    assert reopened.is_file_done("/data/Pos0/t3.tif")
    assert reopened.has_event("e1")
    assert reopened.has_event("e2")
    assert not reopened.has_event("e3")
    assert reopened.events_offset() == 1234
    assert reopened.frame_count() == 2
    reopened.close()


def test_commits_are_idempotent_and_the_offset_moves(tmp_path: Path) -> None:
    journal = Journal.in_state_dir(tmp_path)
    frame = DoneFrame(KEY, "zmq", None, 1.0)
    journal.record(frames=[frame], event_ids=["e1"], events_offset=10)
    journal.record(frames=[frame], event_ids=["e1", "e2"], events_offset=20)
    journal.record(event_ids=[])  # no offset: the offset stays
    assert journal.frame_count() == 1
    assert journal.events_offset() == 20
    journal.close()


def test_a_failed_commit_leaves_nothing_behind(tmp_path: Path) -> None:
    journal = Journal.in_state_dir(tmp_path)
    bad = DoneFrame(FrameKey("acq", "Pos0", object()), "zmq", None, 1.0)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.Error):
        journal.record(frames=[DoneFrame(KEY, "zmq", None, 1.0), bad], event_ids=["e1"])
    assert journal.frame_count() == 0
    assert not journal.has_event("e1")
    journal.record(frames=[DoneFrame(KEY, "zmq", None, 1.0)])  # still usable
    assert journal.frame_count() == 1
    journal.close()


def test_a_lagging_journal_sees_its_own_records_and_commits_them_on_flush(
    tmp_path: Path,
) -> None:
    journal = Journal.in_state_dir(tmp_path, commit_interval_s=3600)
    journal.record(frames=[DoneFrame(KEY, "zmq", None, 1.0)], event_ids=["e1"], events_offset=7)
    bad = DoneFrame(FrameKey("acq", "Pos0", object()), "zmq", None, 1.0)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.Error):
        journal.record(frames=[bad], event_ids=["e2"], events_offset=9)
    assert journal.is_frame_done(KEY)  # its own records, not yet committed
    assert journal.has_event("e1")
    assert not journal.has_event("e2")  # the failed record undone
    assert journal.events_offset() == 7

    def committed_frames() -> int:
        with sqlite3.connect(journal.path) as other:
            return int(other.execute("SELECT count(*) FROM frames").fetchone()[0])

    assert committed_frames() == 0
    journal.flush()
    assert committed_frames() == 1
    journal.record(frames=[DoneFrame(FrameKey("acq", "Pos0", 4), "zmq", None, 1.0)])
    journal.close()  # closing commits what is open
    assert committed_frames() == 2


def test_readers_and_a_writer_in_threads(tmp_path: Path) -> None:
    journal = Journal.in_state_dir(tmp_path)
    errors: list[BaseException] = []

    def write() -> None:
        for t in range(200):
            journal.record(frames=[DoneFrame(FrameKey("a", "p", t), "zmq", None, 0.0)])

    def read() -> None:
        try:
            for t in range(200):
                journal.is_frame_done(FrameKey("a", "p", t))
                journal.is_file_done(f"/x/{t}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write), *(threading.Thread(target=read) for _ in range(3))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert journal.frame_count() == 200
    journal.close()


# --- the journal and the events file together, through the pipeline ------------------


class ListSource:
    """A finite source: emits its items once, then returns (as a replay does)."""

    kind = "zmq"

    def __init__(self, items: Sequence[Frame | Rejection]) -> None:
        self._items = items

    def run(self, emit: Emit, stop: threading.Event) -> None:
        for item in self._items:
            if not emit(item):
                return


def frame(t: int, position: str = "Pos0") -> Frame:
    return Frame(
        key=FrameKey("acq", position, t),
        pixels=np.zeros((4, 4), dtype=np.uint16),
        axes="YX",
        source="zmq",
        completed_at=1000.0 + t,
    )


def run_pipeline(
    state: Path,
    events: Path,
    items: Sequence[Frame | Rejection],
    stage: FramesOnly | None = None,
    stop: threading.Event | None = None,
) -> None:
    journal = Journal.in_state_dir(state)
    try:
        pipeline = Pipeline(
            source=ListSource(items),
            stage=stage or FramesOnly(),
            journal=journal,
            event_log=EventLog(events),
            sinks=[],
            metrics=Metrics(),
            settings=PipelineSettings(
                queue_size=4,
                commit_batch=3,
                shutdown_timeout_s=5.0,
                quarantine_dir=state / "quarantine",
            ),
        )
        pipeline.run(stop or threading.Event())
    finally:
        journal.close()


def event_lines(events: Path) -> list[str]:
    return [json.loads(line)["event_id"] for line in events.read_text().splitlines()]


def test_events_written_before_a_crash_are_not_written_again(tmp_path: Path) -> None:
    """Killed after the events file's fsync, before the journal's commit."""
    state, events = tmp_path / "state", tmp_path / "events.jsonl"
    run_pipeline(state, events, [frame(0), frame(1)])
    crashed = EventLog(events)  # frames 2 and 3 reached the file, not the journal
    crashed.append([frame_event(frame(t)).to_record(emitted_at=2000.0) for t in (2, 3)])
    crashed.sync()
    crashed.close()

    run_pipeline(state, events, [frame(t) for t in range(5)])  # at-least-once re-send
    ids = event_lines(events)
    assert len(ids) == len(set(ids))
    frame_ids = {frame_event(frame(t)).event_id for t in range(5)}
    assert frame_ids <= set(ids)
    # five frames; and t=0..3 re-sent once done: t=2, t=3 are known done from their frame
    # events in the file (recovered), so each is a duplicate, not analysed again
    assert len(ids) == 5 + 4
    records = [json.loads(line) for line in events.read_text().splitlines()]
    duplicates = [r["t"] for r in records if r["kind"] == "rejected"]
    assert sorted(duplicates) == [0, 1, 2, 3]
    journal = Journal.in_state_dir(state)
    assert all(journal.is_frame_done(FrameKey("acq", "Pos0", t)) for t in range(5))
    assert journal.events_offset() == events.stat().st_size
    journal.close()


def test_a_torn_write_is_cut_and_the_frame_done_again(tmp_path: Path) -> None:
    """Killed mid-write: the half line goes, the frame gets its one event on restart."""
    state, events = tmp_path / "state", tmp_path / "events.jsonl"
    run_pipeline(state, events, [frame(0)])
    with open(events, "ab") as f:
        f.write(b'{"event_id": "' + frame_event(frame(1)).event_id.encode()[:10])
    run_pipeline(state, events, [frame(1)])
    ids = event_lines(events)
    assert ids == [frame_event(frame(t)).event_id for t in (0, 1)]


def test_a_duplicate_within_one_batch_is_analysed_once(tmp_path: Path) -> None:
    state, events = tmp_path / "state", tmp_path / "events.jsonl"
    run_pipeline(state, events, [frame(0), frame(0), frame(0)])
    ids = event_lines(events)
    assert len(ids) == len(set(ids)) == 2  # one frame event, one duplicate event


def test_a_file_emitted_twice_is_analysed_once_and_kept(tmp_path: Path) -> None:
    """The watcher can see a file close twice (rewritten in place) before its commit."""
    state, events = tmp_path / "state", tmp_path / "events.jsonl"
    path = tmp_path / "incoming" / "Pos0" / "img_0001.tif"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"pixels")
    seen = dataclasses.replace(frame(1), path=str(path), source="watch")
    run_pipeline(state, events, [seen, seen])
    assert path.exists(), "a good frame was quarantined"
    assert event_lines(events) == [frame_event(seen).event_id]
    run_pipeline(state, events, [seen])  # and after a restart: nothing
    assert event_lines(events) == [frame_event(seen).event_id]
    assert path.exists()


def test_duplicates_of_keys_that_print_alike_are_each_reported(tmp_path: Path) -> None:
    """("a/b", "c", 1) and ("a", "b/c", 1) print as the same "a/b/c/t=1": their duplicate
    events must still have their own ids."""
    state, events = tmp_path / "state", tmp_path / "events.jsonl"
    one = dataclasses.replace(frame(1), key=FrameKey("a/b", "c", 1))
    other = dataclasses.replace(frame(1), key=FrameKey("a", "b/c", 1))
    run_pipeline(state, events, [one, other, one, other])
    records = [json.loads(line) for line in events.read_text().splitlines()]
    rejected = [(r["acquisition"], r["position"]) for r in records if r["kind"] == "rejected"]
    assert sorted(rejected) == [("a", "b/c"), ("a/b", "c")]


class SlowStage(FramesOnly):
    """Frames that take longer than a commit's window to analyse, as full nanowell
    frames do; it notes which frame events were on disk as each frame began, and can
    ask the pipeline to stop while a frame is in hand."""

    def __init__(self, events: Path, seconds: float, stop_at_t: int | None = None) -> None:
        self.events, self.seconds, self.stop_at_t = events, seconds, stop_at_t
        self.on_disk_at_start: dict[int, int] = {}
        self.stop = threading.Event()

    def update(self, frame: Frame) -> list[Event]:
        text = self.events.read_text() if self.events.exists() else ""
        self.on_disk_at_start[frame.key.t] = text.count('"kind":"frame"')
        if frame.key.t == self.stop_at_t:
            self.stop.set()
        time.sleep(self.seconds)
        return []


def test_slow_frames_are_committed_one_by_one(tmp_path: Path) -> None:
    """A backlog of frames slower than the batch window: each frame's events are on
    disk before the next frame's analysis begins, not after a batch of 32."""
    state, events = tmp_path / "state", tmp_path / "events.jsonl"
    stage = SlowStage(events, seconds=BATCH_WINDOW_S + 0.05)
    run_pipeline(state, events, [frame(t) for t in range(4)], stage=stage)
    assert stage.on_disk_at_start == {0: 0, 1: 1, 2: 2, 3: 3}


def test_a_stop_waits_for_the_frame_in_hand_and_the_queue_only(tmp_path: Path) -> None:
    state, events = tmp_path / "state", tmp_path / "events.jsonl"
    stage = SlowStage(events, seconds=0.05, stop_at_t=1)
    run_pipeline(state, events, [frame(t) for t in range(40)], stage=stage, stop=stage.stop)
    analysed = sorted(stage.on_disk_at_start)
    assert analysed[:2] == [0, 1]
    assert len(analysed) <= 2 + 4  # the frame in hand, then the queue (queue_size 4)
    assert event_lines(events) == [frame_event(frame(t)).event_id for t in analysed]


@pytest.mark.parametrize("loss", ["deleted", "truncated"])
def test_an_events_file_lost_while_stopped_is_refilled_by_frames_that_come_again(
    tmp_path: Path, loss: str
) -> None:
    """The journal indexes the events file; when the file is shorter than the journal
    knew, the journal is rebuilt from it, so frames sent again (or files still in the
    watched folder) get their frame events back instead of being taken as done."""
    state, events = tmp_path / "state", tmp_path / "events.jsonl"
    run_pipeline(state, events, [frame(t) for t in range(6)])
    if loss == "deleted":
        events.unlink()
        kept: list[int] = []
    else:
        lines = events.read_text().splitlines(keepends=True)
        events.write_text("".join(lines[:2]))
        kept = [0, 1]
    run_pipeline(state, events, [frame(t) for t in range(6)])
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert sorted(r["t"] for r in records if r["kind"] == "frame") == list(range(6))
    assert sorted(r["t"] for r in records if r["kind"] == "rejected") == kept
    ids = [r["event_id"] for r in records]
    assert len(ids) == len(set(ids))


def test_a_failed_append_leaves_no_partial_line(tmp_path: Path) -> None:
    """A write that fails mid-way (a full disk; here the file-size limit) is cut back,
    so the next append starts on a line of its own, and the error names the file."""
    events = tmp_path / "events.jsonl"
    log = EventLog(events)
    log.append([{"event_id": "a", "n": 1}])
    log.sync()
    with file_size_limit(log.size() + 40), pytest.raises(OSError, match="too large") as failed:
        log.append([{"event_id": "b", "padding": "x" * 200}])
    assert failed.value.filename == str(events)
    log.append([{"event_id": "c"}])
    log.close()
    assert [json.loads(line)["event_id"] for line in events.read_text().splitlines()] == ["a", "c"]


def grown_files_bytes(folder: Path) -> int:
    return max(f.stat().st_size for f in folder.iterdir())


def record_many(journal: Journal, frames: int) -> None:
    """Frames 1.. one record each (a lagging journal fails when SQLite spills its pages)."""
    for t in range(1, frames):
        key = FrameKey("acq", "Pos0", t)
        journal.record(frames=[DoneFrame(key, "zmq", None, 1.0)], event_ids=[f"e{t}" * 200])


@pytest.mark.parametrize("commit_interval_s", [0.0, 3600.0], ids=["commit each", "lagging"])
def test_a_journal_that_cannot_grow_says_so_and_still_closes(
    tmp_path: Path, commit_interval_s: float
) -> None:
    """SQLite's write failure is an OutputWriteError (an OSError naming the journal's file),
    whether the COMMIT fails or, with a transaction held open (the daemon's default), an
    INSERT does; what SQLite rolled back leaves nothing for ``close`` to fail on, and what
    was committed before is kept."""
    journal = Journal.in_state_dir(tmp_path, commit_interval_s=commit_interval_s)
    journal.record(frames=[DoneFrame(KEY, "zmq", None, 1.0)], event_ids=["e0"])
    journal.flush()
    with (
        file_size_limit(grown_files_bytes(tmp_path) + 100),
        pytest.raises(OutputWriteError) as failed,
    ):
        record_many(journal, frames=5000)
    assert isinstance(failed.value, OSError)
    assert failed.value.filename == str(tmp_path / "journal.sqlite3")
    journal.close()
    reopened = Journal.in_state_dir(tmp_path)
    assert reopened.has_event("e0")
    assert reopened.is_frame_done(KEY)
    reopened.close()


def test_a_journal_that_cannot_grow_stops_the_pipeline_at_once(tmp_path: Path) -> None:
    """A failed commit stops ``Pipeline.run`` with that error: the frames still queued are
    not analysed into more failing writes, and the events file holds whole lines only."""
    state, events = tmp_path / "state", tmp_path / "events.jsonl"
    run_pipeline(state, events, [frame(0)])
    with file_size_limit(grown_files_bytes(state) + 100), pytest.raises(OutputWriteError):
        run_pipeline(state, events, [frame(t, position="x" * 2000) for t in range(1, 400)])
    kinds = [json.loads(line)["kind"] for line in events.read_text().splitlines()]
    assert 1 < len(kinds) < 400
    assert set(kinds) == {"frame"}


class RecordingStage(FramesOnly):
    """Records the (position, t) of every frame it is given."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def update(self, frame: Frame) -> list[Event]:
        self.seen.append((frame.key.position, frame.key.t))
        return []


def test_a_frame_behind_a_later_one_of_its_position_gets_its_frame_event_only(
    tmp_path: Path,
) -> None:
    """The stages take a position's frames in order (a patch's onset must not come after
    its death); a frame that arrives after a later one is not analysed, but is accepted."""
    stage = RecordingStage()
    state, events = tmp_path / "state", tmp_path / "events.jsonl"
    order = [frame(0), frame(2), frame(1), frame(0, position="Pos1"), frame(3)]
    run_pipeline(state, events, order, stage=stage)
    assert stage.seen == [("Pos0", 0), ("Pos0", 2), ("Pos1", 0), ("Pos0", 3)]
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert sorted((r["position"], r["t"]) for r in records if r["kind"] == "frame") == [
        ("Pos0", 0), ("Pos0", 1), ("Pos0", 2), ("Pos0", 3), ("Pos1", 0)
    ]  # fmt: skip


class DiskFillsStage(FramesOnly):
    """A stage whose own output (a tracks file) cannot grow from frame 2 on."""

    def update(self, frame: Frame) -> list[Event]:
        if frame.key.t >= 2:
            raise OutputWriteError(28, "No space left on device", "tracks.csv")
        return []


def test_a_stage_output_that_cannot_grow_stops_the_pipeline_not_the_frame(
    tmp_path: Path,
) -> None:
    """A full disk under the stage's own output is not one bad frame: no ``internal_error``
    rejection is written for it, and no later frame is analysed."""
    state, events = tmp_path / "state", tmp_path / "events.jsonl"
    with pytest.raises(OutputWriteError, match="No space left"):
        run_pipeline(state, events, [frame(t) for t in range(6)], stage=DiskFillsStage())
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(r["kind"], r["t"]) for r in records] == [("frame", 0), ("frame", 1)]


class NotANumberStage(FramesOnly):
    """A stage with a bug: for frame 1 it derives an event whose confidence is NaN."""

    def update(self, frame: Frame) -> list[Event]:
        if frame.key.t != 1:
            return []
        key = frame.key
        odd = Event(
            event_id=f"odd-{key.t}",
            kind="cell_type",
            acquisition=key.acquisition,
            position=key.position,
            t=key.t,
            completed_at=frame.completed_at,
            fields={"confidence": float("nan")},
        )
        return [odd]


def test_an_event_that_cannot_be_written_as_json_becomes_a_rejection_not_a_crash(
    tmp_path: Path,
) -> None:
    state, events = tmp_path / "state", tmp_path / "events.jsonl"
    run_pipeline(state, events, [frame(0), frame(1), frame(2)], stage=NotANumberStage())
    written = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["t"] for e in written if e["kind"] == "frame"] == [0, 1, 2]
    (rejected,) = [e for e in written if e["kind"] == "rejected"]
    assert (rejected["reason"], rejected["t"]) == ("internal_error", 1)
    assert "cell_type event could not be written as JSON" in rejected["detail"]
    assert not [e for e in written if e["kind"] == "cell_type"]


class EndDecidingStage(FramesOnly):
    """Decides one event per position, at the end of the run only (as the nanowell stage
    makes the deaths its apoptosis hold still waits on); ``fails`` makes ``finish`` raise."""

    def __init__(self, fails: bool = False) -> None:
        self.latest: dict[str, Frame] = {}
        self.fails = fails

    def update(self, frame: Frame) -> list[Event]:
        self.latest[frame.key.position] = frame
        return []

    def finish(self) -> list[Event]:
        if self.fails:
            raise RuntimeError("a bug at the end of the run")
        return [
            Event(
                event_id=f"end-{position}",
                kind="death",
                acquisition=frame.key.acquisition,
                position=position,
                t=frame.key.t,
                completed_at=frame.completed_at,
                fields={"pathway": "apoptosis", "onset_t": frame.key.t - 1},
            )
            for position, frame in self.latest.items()
        ]


def test_the_events_the_end_of_a_run_decides_are_written_once(tmp_path: Path) -> None:
    state, events = tmp_path / "state", tmp_path / "events.jsonl"
    frames = [frame(0), frame(1), frame(0, "Pos1")]
    run_pipeline(state, events, frames, stage=EndDecidingStage())
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(r["kind"], r["position"], r["t"]) for r in records] == [
        ("frame", "Pos0", 0),
        ("frame", "Pos0", 1),
        ("frame", "Pos1", 0),
        ("death", "Pos0", 1),
        ("death", "Pos1", 0),
    ]
    run_pipeline(state, events, frames, stage=EndDecidingStage())  # the same frames again
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert [r["kind"] for r in records].count("death") == 2
    assert len({r["event_id"] for r in records}) == len(records)


def test_a_stage_failing_at_the_end_of_a_run_loses_only_those_events(tmp_path: Path) -> None:
    state, events = tmp_path / "state", tmp_path / "events.jsonl"
    run_pipeline(state, events, [frame(0), frame(1)], stage=EndDecidingStage(fails=True))
    assert [json.loads(line)["kind"] for line in events.read_text().splitlines()] == [
        "frame",
        "frame",
    ]
