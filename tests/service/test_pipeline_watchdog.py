"""A stalled analysis loop stops the watchdog pings; released, they resume.

A real ``Pipeline`` (journal, events file, metrics) with the service heartbeat
(``SdNotifier`` to a real datagram socket) and a stage whose ``update`` blocks
on an event the test holds.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from notify_listener import NotifyListener

from livecell.events import Event
from livecell.frames import Frame, FrameKey, Rejection
from livecell.journal import Journal
from livecell.metrics import Metrics
from livecell.pipeline import Pipeline, PipelineSettings
from livecell.service import NotifySettings, SdNotifier, ServiceHeartbeat
from livecell.sinks import EventLog
from livecell.stream import Emit

PING = "WATCHDOG=1"


class GateSource:
    """A live source: emits what the test puts in ``items`` until stopped."""

    kind = "zmq"

    def __init__(self) -> None:
        self.items: queue.Queue[Frame | Rejection] = queue.Queue()

    def run(self, emit: Emit, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                item = self.items.get(timeout=0.05)
            except queue.Empty:
                continue
            if not emit(item):
                return


class BlockingStage:
    """A Stage whose ``update`` waits until the test releases it (at most 30 s)."""

    name = "blocking"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.warmed = False

    def warm_up(self) -> None:
        self.warmed = True

    def update(self, frame: Frame) -> list[Event]:
        self.entered.set()
        self.release.wait(timeout=30)
        return []

    def finish(self) -> list[Event]:
        return []

    def close(self) -> None:
        self.release.set()


def frame(t: int) -> Frame:
    return Frame(
        key=FrameKey("acq", "Pos0", t),
        pixels=np.zeros((4, 4), dtype=np.uint16),
        axes="YX",
        source="zmq",
        completed_at=time.time(),
    )


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(tmp_path)
    yield listener
    listener.close()


def test_stalled_stage_stops_pings(tmp_path: Path, listener: NotifyListener) -> None:
    notifier = SdNotifier(NotifySettings(str(listener.path), watchdog_usec=100_000))
    source, stage = GateSource(), BlockingStage()
    journal = Journal.in_state_dir(tmp_path / "state")
    pipeline = Pipeline(
        source=source,
        stage=stage,
        journal=journal,
        event_log=EventLog(tmp_path / "events.jsonl"),
        sinks=[],
        metrics=Metrics(),
        settings=PipelineSettings(
            queue_size=2,
            commit_batch=4,
            shutdown_timeout_s=5.0,
            quarantine_dir=tmp_path / "state" / "quarantine",
        ),
        heartbeat=ServiceHeartbeat(notifier, status_interval_s=0.0),
    )
    pipeline.warm_up()
    assert stage.warmed
    stop = threading.Event()
    runner = threading.Thread(target=pipeline.run, args=(stop,), daemon=True)
    runner.start()
    try:
        # idle: the loop wakes every 0.1 s and pings
        assert listener.wait(lambda lines: lines.count(PING) >= 4, timeout_s=5)

        source.items.put(frame(0))
        assert stage.entered.wait(timeout=5)
        blocked_at = time.monotonic()
        time.sleep(0.8)  # eight idle wake-ups' worth
        late = [t for t in listener.times(PING) if t > blocked_at + 0.1]
        assert late == [], f"{len(late)} pings while update() was stuck"

        stage.release.set()
        released_at = time.monotonic()
        assert listener.wait(
            lambda lines: any(line.startswith("STATUS=frames 1,") for line in lines), timeout_s=5
        )
        status = next(x for x in listener.lines() if x.startswith("STATUS=frames 1,"))
        lag_s = float(status.split("lag ")[1].removesuffix(" s"))
        assert lag_s >= 0.7, status  # the frame waited out the stall
        assert listener.wait(
            lambda _: len([t for t in listener.times(PING) if t > released_at]) >= 3, timeout_s=5
        )
    finally:
        stage.release.set()
        stop.set()
        runner.join(timeout=10)
        journal.close()
        notifier.close()
    assert not runner.is_alive()
