"""When the demo stops waiting: all frames analysed, or no frame analysed for a while."""

from __future__ import annotations

import io
import threading
import time

import pytest

from livecell.demo import command
from livecell.demo.sink import QueueSink

DRAIN_S = 0.6


class FinishedMicroscope:
    """The simulator side of the demo after its last frame: done, not failed."""

    def finished(self) -> bool:
        return True

    def failed(self) -> bool:
        return False


def view(sink: QueueSink, stop: threading.Event, expected: int) -> command._View:
    return command._View(
        sink,
        io.StringIO(),
        tty=False,
        expected=expected,
        interval_s=0.5,
        simulator=FinishedMicroscope(),  # type: ignore[arg-type]
        stop=stop,
    )


def frame(t: int) -> dict[str, object]:
    return {"kind": "frame", "t": t, "latency_s": 1.0, "position": "Pos0"}


def test_an_analysis_that_fell_behind_is_waited_for_while_it_moves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(command, "_DRAIN_AFTER_SIMULATOR_S", DRAIN_S)
    sink, stop = QueueSink(), threading.Event()
    shown = view(sink, stop, expected=10)
    shown.start()
    try:
        for t in range(10):  # one frame every 0.25 s: 2.5 s in all, four times DRAIN_S
            assert not stop.is_set(), f"stopped at frame {t} while frames still came"
            sink.publish([frame(t)])
            time.sleep(0.25)
        assert stop.wait(timeout=2), "not stopped once every frame was analysed"
    finally:
        shown.finish()


def test_an_analysis_that_stalls_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(command, "_DRAIN_AFTER_SIMULATOR_S", DRAIN_S)
    sink, stop = QueueSink(), threading.Event()
    shown = view(sink, stop, expected=10)
    shown.start()
    try:
        sink.publish([frame(0)])
        started = time.monotonic()
        assert stop.wait(timeout=5), "never gave up on a stalled analysis"
        assert time.monotonic() - started >= DRAIN_S - 0.25
    finally:
        shown.finish()
