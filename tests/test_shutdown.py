"""Shutdown: SIGTERM or SIGINT makes ``livecell run`` exit 0 within 10 s, sinks flushed.

The signal arrives while frames are still coming (a ZeroMQ sender mid-stream,
files being written), so there is a frame in hand. Afterwards every line of
the events file is complete, and the journal and the events file agree: each
frame the daemon took in and committed has its ``frame`` event on disk.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from daemons import Daemon, free_port, read_events
from microscope import FileWriter, PacedSender, frame_message

SHUTDOWN_LIMIT_S = 10.0
SIGNALS = [signal.SIGTERM, signal.SIGINT]


def journal_frames(state_dir: Path) -> set[tuple[str, str, int]]:
    db = sqlite3.connect(state_dir / "journal.sqlite3")
    try:
        rows = db.execute("SELECT acquisition, position, t FROM frames").fetchall()
    finally:
        db.close()
    return {(a, p, int(t)) for a, p, t in rows}


def stop_within_limit(daemon: Daemon, sig: signal.Signals) -> float:
    started = time.monotonic()
    code = daemon.stop(sig, timeout_s=SHUTDOWN_LIMIT_S + 5)
    elapsed = time.monotonic() - started
    assert code == 0, f"exit {code} after {sig.name}:\n{daemon.log_text()[-3000:]}"
    assert elapsed < SHUTDOWN_LIMIT_S, f"{sig.name}: took {elapsed:.1f} s to exit"
    return elapsed


def check_flushed(daemon: Daemon) -> set[tuple[str, str, int]]:
    """Complete lines only, and the frames committed are exactly those with events."""
    data = daemon.events_path.read_bytes()
    assert data.endswith(b"\n")
    events = read_events(daemon.events_path)
    frames = {(e["acquisition"], e["position"], e["t"]) for e in events if e["kind"] == "frame"}
    assert len(frames) == len([e for e in events if e["kind"] == "frame"])
    assert journal_frames(daemon.state_dir) == frames
    assert '"stopped"' in daemon.log_text()
    return frames


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_signal_mid_stream_zmq(make_daemon: Callable[..., Daemon], sig: signal.Signals) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    daemon = make_daemon(source={"kind": "zmq", "endpoint": endpoint})
    daemon.start()
    daemon.wait_started()
    messages = [frame_message("Pos0", t, shape=(256, 256)) for t in range(2000)]
    sender = PacedSender(endpoint, messages, interval_s=0.002)
    sender.start()
    try:
        daemon.wait_events("frame", 20)
        stop_within_limit(daemon, sig)
    finally:
        sender.halt.set()
        sender.join(timeout=15)
    assert len(check_flushed(daemon)) >= 20


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_signal_while_files_arrive(make_daemon: Callable[..., Daemon], sig: signal.Signals) -> None:
    daemon = make_daemon(source={"path": "incoming", "settle_s": 0.2})
    incoming = daemon.workdir / "incoming"
    writer = FileWriter(incoming)
    writer.start()
    daemon.start()
    try:
        daemon.wait_started()
        daemon.wait_events("frame", 10)
        stop_within_limit(daemon, sig)
    finally:
        writer.stop()
    assert len(check_flushed(daemon)) >= 10


def test_idle_daemon_stops_at_once(make_daemon: Callable[..., Daemon]) -> None:
    daemon = make_daemon(source={"path": "incoming"})
    (daemon.workdir / "incoming").mkdir()
    daemon.start()
    daemon.wait_started()
    assert stop_within_limit(daemon, signal.SIGTERM) < 2.0
    assert daemon.events_path.exists()


HANDLER_WHILE_LOGGING = """
import os, signal, sys, threading, time
import structlog
from livecell.daemon import _stop_on_signals
from livecell.logs import configure_logging
configure_logging(level="info", json=True)
log = structlog.get_logger("test")
stop = threading.Event()
_stop_on_signals(stop)
threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
while not stop.is_set():
    log.warning("rejected", path="/data/incoming/x.tif", reason="not_tiff")
time.sleep(0.5)  # the line saying so comes from a thread of its own
print("stopped", file=sys.__stdout__, flush=True)
"""


def test_a_signal_that_lands_inside_a_log_call_still_stops() -> None:
    """The handler runs on the main thread, maybe inside a log call holding the log's
    (non-reentrant) lock: when it logged itself it waited on that lock forever."""
    done = subprocess.run(
        [sys.executable, "-c", HANDLER_WHILE_LOGGING],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "stopped"
    assert '"event": "stopping"' in done.stderr
