"""``ActionSink``: matched events reach real peers off the publishing thread; failures
are retried with backoff and counted, and a dead or hanging peer never slows ``publish``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from action_peers import (
    HttpPeer,
    ZmqPeer,
    dead_port,
    death_event,
    frame_event,
    recorded,
    recording_script,
    script_command,
    wait_until,
)
from structlog.testing import capture_logs

from livecell.actions import ActionSink
from livecell.config import ActionConfig
from livecell.metrics import Metrics

PUBLISH_LIMIT_S = 0.05


def action(**fields: Any) -> ActionConfig:
    return ActionConfig.model_validate({"kind": "death", **fields})


def count(metrics: Metrics, name: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "livecell_actions_total", {"action": name, "outcome": outcome}
    )
    return value or 0.0


@contextmanager
def sink_of(actions: list[ActionConfig], metrics: Metrics) -> Iterator[ActionSink]:
    sink = ActionSink(actions, metrics.count_action)
    try:
        yield sink
    finally:
        sink.close()


def timed_publish(sink: ActionSink, records: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    sink.publish(records)
    return time.perf_counter() - started


def test_matching_death_reaches_each_peer(tmp_path: Path) -> None:
    out = tmp_path / "events.txt"
    script = recording_script(tmp_path)
    metrics = Metrics()
    wanted = death_event(event_id="a" * 32)
    others = [
        frame_event(),
        death_event(event_id="b" * 32, well="r002c002"),
        death_event(event_id="c" * 32, confidence=0.5),
    ]
    filters = {"well": "r001c*", "min_confidence": 0.9}
    with ZmqPeer().serving() as zmq_peer, HttpPeer().serving() as http_peer:
        actions = [
            action(zmq=zmq_peer.endpoint, **filters),
            action(http=http_peer.url, **filters),
            action(command=script_command(script, out), **filters),
        ]
        with sink_of(actions, metrics) as sink:
            sink.publish([*others[:2], wanted, others[2]])
            assert wait_until(
                lambda: len(zmq_peer.received) + len(http_peer.received) + len(recorded(out)) >= 3
            )
            time.sleep(0.2)  # time for a wrongly matched event to arrive too
    assert zmq_peer.received == [wanted]
    assert http_peer.received == [wanted]
    assert recorded(out) == [wanted]
    for name in ("0:zmq", "1:http", "2:command"):
        assert count(metrics, name, "sent") == 1
        assert count(metrics, name, "failed") == 0


def test_retries_with_doubling_backoff() -> None:
    metrics = Metrics()
    with HttpPeer(fail_first=2).serving() as peer:
        with sink_of([action(http=peer.url, retries=3, backoff_s=0.1)], metrics) as sink:
            sink.publish([death_event()])
            assert wait_until(lambda: count(metrics, "0:http", "sent") == 1)
        gaps = [b - a for a, b in zip(peer.times, peer.times[1:], strict=False)]
    assert peer.received == [death_event()]
    assert len(gaps) == 2
    assert 0.1 <= gaps[0] < 0.6  # backoff_s, then twice that
    assert 0.2 <= gaps[1] < 0.9
    assert count(metrics, "0:http", "retried") == 2
    assert count(metrics, "0:http", "failed") == 0


def test_command_retried_until_it_succeeds(tmp_path: Path) -> None:
    out = tmp_path / "events.txt"
    command = script_command(recording_script(tmp_path, fail_first=2), out)
    metrics = Metrics()
    with sink_of([action(command=command, backoff_s=0.01)], metrics) as sink:
        sink.publish([death_event()])
        assert wait_until(lambda: count(metrics, "0:command", "sent") == 1)
    assert recorded(out) == [death_event()]
    assert count(metrics, "0:command", "retried") == 2


def test_dead_peers_fail_counted_without_slowing_publish() -> None:
    metrics = Metrics()
    port = dead_port()
    actions = [
        action(http=f"http://127.0.0.1:{port}/x", retries=2, backoff_s=0.01),
        action(zmq=f"tcp://127.0.0.1:{port}", retries=1, backoff_s=0.01, timeout_s=0.2),
    ]
    with sink_of(actions, metrics) as sink:
        seconds = [timed_publish(sink, [frame_event(), death_event()]) for _ in range(3)]
        assert max(seconds) < PUBLISH_LIMIT_S
        assert wait_until(lambda: count(metrics, "0:http", "failed") == 3)
        assert wait_until(lambda: count(metrics, "1:zmq", "failed") >= 1)
    assert count(metrics, "0:http", "retried") == 6
    assert count(metrics, "0:http", "sent") == 0
    assert count(metrics, "1:zmq", "sent") == 0


def test_hanging_peers_time_out_without_slowing_publish() -> None:
    metrics = Metrics()
    with HttpPeer(hang_s=30).serving() as http_peer, ZmqPeer(never_reply=True).serving() as zp:
        actions = [
            action(http=http_peer.url, timeout_s=0.2, retries=0),
            action(zmq=zp.endpoint, timeout_s=0.2, retries=0),
        ]
        with sink_of(actions, metrics) as sink:
            seconds = [timed_publish(sink, [death_event()]) for _ in range(5)]
            assert max(seconds) < PUBLISH_LIMIT_S
            assert wait_until(lambda: count(metrics, "0:http", "failed") >= 2)
            assert wait_until(lambda: count(metrics, "1:zmq", "failed") >= 2)
            started = time.monotonic()
        closed_in = time.monotonic() - started
        assert http_peer.received == []  # (the hanging handlers answer once released)
        assert zp.received == []
    assert closed_in < 1.5  # the attempt in hand (0.2 s), not the 2 s close timeout
    for name in ("0:http", "1:zmq"):
        outcomes = sum(count(metrics, name, o) for o in ("sent", "failed", "dropped"))
        assert outcomes == 5  # every event accounted for, unsent ones dropped at close


def test_full_queue_drops_and_counts() -> None:
    metrics = Metrics()
    with HttpPeer(hang_s=30).serving() as peer:
        with sink_of([action(http=peer.url, queue_size=2, timeout_s=5)], metrics) as sink:
            assert timed_publish(sink, [death_event()]) < PUBLISH_LIMIT_S
            assert wait_until(lambda: len(peer.times) == 1)  # the thread is stuck in it
            seconds = timed_publish(sink, [death_event(t=t) for t in range(10)])
            assert seconds < PUBLISH_LIMIT_S
            assert count(metrics, "0:http", "dropped") == 8
            started = time.monotonic()
        assert time.monotonic() - started < 3.0  # close does not wait out the 5 s timeout


@pytest.mark.parametrize("retries", [0, 2])
def test_close_interrupts_backoff(retries: int) -> None:
    metrics = Metrics()
    url = f"http://127.0.0.1:{dead_port()}/x"
    sink = ActionSink([action(http=url, retries=retries, backoff_s=30)], metrics.count_action)
    with capture_logs() as logs:
        sink.publish([death_event()])
        if retries:  # the first attempt is refused at once; then the 30 s wait
            assert wait_until(lambda: any(e["event"] == "action attempt failed" for e in logs))
        else:
            assert wait_until(lambda: count(metrics, "0:http", "failed") == 1)
    started = time.monotonic()
    sink.close()
    assert time.monotonic() - started < 1.0
    assert count(metrics, "0:http", "dropped") == (retries > 0)
    assert count(metrics, "0:http", "retried") == 0  # stopped before any retry ran


def test_close_kills_a_command_still_running(tmp_path: Path) -> None:
    started_file, marker = tmp_path / "started", tmp_path / "outlived"
    script = f"touch {started_file}; sleep 3; touch {marker}"
    metrics = Metrics()
    sink = ActionSink([action(command=["sh", "-c", script], timeout_s=120)], metrics.count_action)
    sink.publish([death_event()])
    assert wait_until(started_file.exists)
    started = time.monotonic()
    sink.close()
    assert time.monotonic() - started < 1.5
    assert count(metrics, "0:command", "dropped") == 1
    time.sleep(3.5)
    assert not marker.exists(), "the command outlived the daemon's stop"
