"""``livecell run`` under a stand-in systemd: a real ``NOTIFY_SOCKET`` and watchdog settings.

The daemon is a real subprocess (``tests/daemons.py``); the notify socket is a
datagram socket bound by the test. Shutdown timing and flushing reuse the checks
of ``tests/test_shutdown.py``; what is added here is what systemd sees.
"""

from __future__ import annotations

import itertools
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from daemons import Daemon
from microscope import FileWriter, pixels_for, write_tiff
from notify_listener import NotifyListener
from test_shutdown import check_flushed, stop_within_limit

PING = "WATCHDOG=1"


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifyListener]:
    """The environment systemd gives a Type=notify service with WatchdogSec=0.2."""
    listener = NotifyListener(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", str(listener.path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield listener
    listener.close()


def test_ready_after_warm_up_then_status_and_pings(
    make_daemon: Callable[..., Daemon], listener: NotifyListener
) -> None:
    daemon = make_daemon(source={"path": "incoming", "settle_s": 0.1})
    incoming = daemon.workdir / "incoming"
    incoming.mkdir()
    daemon.start()
    assert listener.wait(lambda lines: "READY=1" in lines), daemon.log_text()
    # the log line is written before READY is sent, on the same thread
    assert '"warmed up"' in daemon.log_text()
    assert listener.lines().count("READY=1") == 1

    ready_at = listener.times("READY=1")[0]
    assert listener.wait(lambda _: len(listener.times(PING)) >= 5, timeout_s=5)
    pings = listener.times(PING)
    assert all(t >= ready_at for t in pings)
    assert max(b - a for a, b in itertools.pairwise(pings)) < 0.5  # every ~0.1 s

    for t in range(3):
        write_tiff(incoming / "Pos0" / f"img_{t:05d}.tif", pixels_for("Pos0", t))
    assert listener.wait(
        lambda lines: any(x.startswith("STATUS=frames 3, queue 0, lag ") for x in lines)
    ), listener.lines()
    assert len(daemon.events("frame")) == 3
    stop_within_limit(daemon, signal.SIGTERM)
    assert listener.wait(lambda lines: "STOPPING=1" in lines, timeout_s=2)


def test_sigterm_mid_stream_sends_stopping_and_flushes(
    make_daemon: Callable[..., Daemon], listener: NotifyListener
) -> None:
    daemon = make_daemon(source={"path": "incoming", "settle_s": 0.2})
    incoming = daemon.workdir / "incoming"
    writer = FileWriter(incoming)
    writer.start()
    daemon.start()
    try:
        assert listener.wait(lambda lines: "READY=1" in lines), daemon.log_text()
        daemon.wait_events("frame", 10)
        assert "STOPPING=1" not in listener.lines()
        stop_within_limit(daemon, signal.SIGTERM)
    finally:
        writer.stop()
    frames = check_flushed(daemon)  # every committed frame has its frame event on disk
    assert len(frames) >= 10
    lines = listener.lines()
    assert lines.count("STOPPING=1") == 1
    assert lines.index("STOPPING=1") > lines.index("READY=1")


def test_sighup_to_the_service_is_logged_and_ignored(
    make_daemon: Callable[..., Daemon], listener: NotifyListener
) -> None:
    """Without a handler SIGHUP ended the process, and systemd counts that a clean exit:
    the service stayed down. Now it says so and goes on analysing."""
    daemon = make_daemon(source={"path": "incoming", "settle_s": 0.1})
    incoming = daemon.workdir / "incoming"
    incoming.mkdir()
    daemon.start()
    assert listener.wait(lambda lines: "READY=1" in lines), daemon.log_text()
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    assert listener.wait(lambda _: "signal ignored" in daemon.log_text(), timeout_s=5)
    write_tiff(incoming / "Pos0" / "img_00000.tif", pixels_for("Pos0", 0))
    daemon.wait_events("frame", 1)
    assert daemon.proc.poll() is None
    assert "STOPPING=1" not in listener.lines()
    stop_within_limit(daemon, signal.SIGTERM)
