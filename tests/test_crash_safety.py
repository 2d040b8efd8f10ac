"""Acceptance 4: kill -9 at random moments, restart, and every frame still has exactly one event.

A 200-frame acquisition (four positions) arrives from files and, separately,
from ZeroMQ while a real ``livecell run`` is killed with SIGKILL at five random
moments and restarted each time. The random moments come from a seeded
generator; the seed is printed (and set with ``LIVECELL_CRASH_SEED`` to replay
a failure).

ZeroMQ has no acknowledgements, so the contract the test holds the daemon to
is: the daemon acknowledges a frame by committing it to its journal, and the
sender is at-least-once: after every restart it re-sends everything from the
start. A re-sent frame that was committed gives one ``rejected`` event with
reason ``duplicate``, never a second ``frame`` event, and no ``event_id`` is
ever written twice.

After every kill the test checks the exactly-once invariant directly: each
frame the journal holds as done already has its ``frame`` event in the file.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from daemons import Daemon, free_port, wait_for
from microscope import (
    PacedSender,
    frame_message,
    pixels_for,
    write_tiff,
    write_tiff_in_chunks,
)

POSITIONS = ("Pos0", "Pos1", "Pos2", "Pos3")
FRAMES = 200
KILLS = 5


def acquisition_order() -> list[tuple[str, int]]:
    """200 frames: every position at t=0, then at t=1, ... (50 time points)."""
    return [(p, t) for t in range(FRAMES // len(POSITIONS)) for p in POSITIONS]


@pytest.fixture
def rng() -> random.Random:
    seed = int(os.environ.get("LIVECELL_CRASH_SEED", time.time_ns() % 1_000_000))
    print(f"crash-safety seed: {seed} (LIVECELL_CRASH_SEED={seed} to replay)")
    return random.Random(seed)


def journal_done_frames(state_dir: Path) -> set[tuple[str, str, int]]:
    """The frames a (dead) daemon's journal holds as done."""
    db_path = state_dir / "journal.sqlite3"
    if not db_path.exists():
        return set()
    db = sqlite3.connect(db_path)
    try:
        rows = db.execute("SELECT acquisition, position, t FROM frames").fetchall()
    except sqlite3.OperationalError:  # killed before the schema was created
        rows = []
    finally:
        db.close()
    return {(a, p, int(t)) for a, p, t in rows}


def frame_keys_in_file(events_path: Path) -> set[tuple[str, str, int]]:
    """Frame events on complete lines (a torn last line from the kill is skipped)."""
    if not events_path.exists():
        return set()
    keys = set()
    for line in events_path.read_bytes().split(b"\n")[:-1]:
        record = json.loads(line)
        if record["kind"] == "frame":
            keys.add((record["acquisition"], record["position"], record["t"]))
    return keys


def check_acknowledged_frames_durable(daemon: Daemon, round_no: int) -> None:
    """After a kill: every frame the journal acknowledged has its event in the file."""
    done = journal_done_frames(daemon.state_dir)
    in_file = frame_keys_in_file(daemon.events_path)
    print(f"kill {round_no}: {len(done)} frames acknowledged, {len(in_file)} frame events")
    missing = done - in_file
    assert not missing, (
        f"after kill {round_no}: journal has frames without a frame event: {missing}"
    )


def check_events_file(events_path: Path) -> list[dict[str, Any]]:
    """Every line is one complete JSON object and no event_id repeats; return the events."""
    data = events_path.read_bytes()
    assert data.endswith(b"\n"), "the events file ends in a torn line"
    events = []
    for number, line in enumerate(data.split(b"\n")[:-1], start=1):
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise AssertionError(f"line {number} is not JSON ({exc}): {line[:200]!r}") from None
        assert isinstance(record, dict), f"line {number} is not an object"
        events.append(record)
    repeated = [i for i, n in Counter(e["event_id"] for e in events).items() if n > 1]
    assert not repeated, f"event ids written more than once: {repeated}"
    return events


def check_one_frame_event_each(
    events: list[dict[str, Any]], expected: set[tuple[str, str, int]]
) -> None:
    frames = Counter(
        (e["acquisition"], e["position"], e["t"]) for e in events if e["kind"] == "frame"
    )
    twice = {k: n for k, n in frames.items() if n > 1}
    assert not twice, f"frames with more than one frame event: {twice}"
    assert set(frames) == expected, (
        f"missing: {sorted(expected - set(frames))}; unexpected: {sorted(set(frames) - expected)}"
    )


def quarantined_files(state_dir: Path) -> list[str]:
    folder = state_dir / "quarantine"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def kill_and_restart(
    daemon: Daemon, rng: random.Random, *, between_kills: Callable[[int], None] | None = None
) -> None:
    """Start, then ``KILLS`` times: let it run a random while, SIGKILL, check, restart."""
    daemon.start()
    for round_no in range(1, KILLS + 1):
        if between_kills is not None:
            between_kills(round_no)
        elif rng.random() < 0.2:
            time.sleep(rng.uniform(0.0, 0.5))  # maybe still starting up or recovering
        else:
            daemon.wait_started()
            time.sleep(rng.uniform(0.05, 1.0))
        daemon.kill()
        check_acknowledged_frames_durable(daemon, round_no)
        time.sleep(rng.uniform(0.0, 0.4))  # frames pile up while it is down
        daemon.start()


@pytest.mark.slow
def test_files_survive_sigkill(make_daemon: Callable[..., Daemon], rng: random.Random) -> None:
    daemon = make_daemon(source={"path": "incoming", "settle_s": 0.3})
    incoming = daemon.workdir / "incoming"
    for position in POSITIONS:
        (incoming / position).mkdir(parents=True)
    order = acquisition_order()
    written: list[Path] = []

    def microscope() -> None:
        for n, (position, t) in enumerate(order):
            path, pixels = incoming / position / f"img_t{t:05d}.tif", pixels_for(position, t)
            if n % 4 == 3:  # now and then a slow file, half-written when the kill comes
                written.append(write_tiff_in_chunks(path, pixels, chunks=3, pause_s=0.03))
            else:
                written.append(write_tiff(path, pixels))
            time.sleep(0.01)

    writer = threading.Thread(target=microscope, name="microscope", daemon=True)
    writer.start()
    kill_and_restart(daemon, rng)
    writer.join(timeout=60)
    assert len(written) == FRAMES
    daemon.wait_started()

    acquisition = incoming.name
    expected = {(acquisition, p, t) for p, t in order}
    assert wait_for(lambda: len(daemon.events("frame")) >= FRAMES, timeout_s=60), (
        f"{len(daemon.events('frame'))} frame events of {FRAMES}:\n{daemon.log_text()[-4000:]}"
    )
    assert daemon.stop() == 0

    events = check_events_file(daemon.events_path)
    check_one_frame_event_each(events, expected)
    assert [e for e in events if e["kind"] == "rejected"] == []
    assert quarantined_files(daemon.state_dir) == []
    assert all(path.exists() for path in written), "a good frame was moved out of the folder"


@pytest.mark.slow
def test_zmq_survives_sigkill(make_daemon: Callable[..., Daemon], rng: random.Random) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    daemon = make_daemon(source={"kind": "zmq", "endpoint": endpoint, "socket": "pull"})
    order = acquisition_order()
    messages = [frame_message(p, t) for p, t in order]
    senders: list[PacedSender] = []

    def resend_everything_then_wait(round_no: int) -> None:
        """At-least-once: each daemon life gets the whole acquisition from the start."""
        if senders:
            senders[-1].halt.set()
            senders[-1].join(timeout=15)
        daemon.wait_started()
        sender = PacedSender(endpoint, messages, interval_s=0.006)
        senders.append(sender)
        sender.start()
        time.sleep(rng.uniform(0.05, 1.2))

    kill_and_restart(daemon, rng, between_kills=resend_everything_then_wait)
    senders[-1].halt.set()
    senders[-1].join(timeout=15)
    assert all(s.error is None for s in senders), [s.error for s in senders]
    daemon.wait_started()
    expected = {("acq", p, t) for p, t in order}
    send_everything(endpoint, messages)
    assert wait_for(lambda: frame_keys_in_file(daemon.events_path) == expected, timeout_s=60), (
        f"{len(daemon.events('frame'))} frame events of {FRAMES}:\n{daemon.log_text()[-4000:]}"
    )
    # Every frame is now acknowledged: one more full re-send is all duplicates,
    # and each frame ends with exactly one duplicate event, whenever it was first seen.
    send_everything(endpoint, messages)
    assert wait_for(lambda: len(daemon.events("rejected")) >= FRAMES, timeout_s=60), (
        f"{len(daemon.events('rejected'))} duplicates of {FRAMES}:\n{daemon.log_text()[-4000:]}"
    )
    assert daemon.stop() == 0

    events = check_events_file(daemon.events_path)
    check_one_frame_event_each(events, expected)
    rejected = [e for e in events if e["kind"] == "rejected"]
    assert {e["reason"] for e in rejected} == {"duplicate"}
    duplicates = Counter((e["acquisition"], e["position"], e["t"]) for e in rejected)
    assert set(duplicates) == expected
    assert max(duplicates.values()) == 1, "a frame's duplicate was reported twice"
    assert quarantined_files(daemon.state_dir) == []
    assert journal_done_frames(daemon.state_dir) == expected


def send_everything(endpoint: str, messages: list[list[bytes]]) -> None:
    sender = PacedSender(endpoint, messages, interval_s=0)
    sender.start()
    sender.join(timeout=30)
    assert sender.error is None
    assert sender.sent == len(messages)
