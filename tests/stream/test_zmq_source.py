"""The ZeroMQ source against a real ``livecell run`` (SPEC 3.2, 4, 6; acceptance 3 and 5).

Every test starts the daemon as a subprocess with ``source.kind = "zmq"`` on a
free 127.0.0.1 port and talks to it with plain pyzmq, as a microscope would.
Each sender has its own ``zmq.Context`` and is closed with a linger and
``term()``, so nothing queued is dropped when the test's sender goes away.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import zmq
from daemons import Daemon, free_port, wait_for
from prometheus_client.parser import text_string_to_metric_families

ACQUISITION = "acq-zmq"
SHAPE = (64, 64)

MakeDaemon = Callable[..., Daemon]


# --------------------------------------------------------------------------- helpers


def header(t: int, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "v": 1,
        "acquisition": ACQUISITION,
        "position": "P1",
        "t": t,
        "dtype": "uint8",
        "shape": list(SHAPE),
        "axes": "YX",
        "timestamp": time.time(),
    }
    base.update(fields)
    return base


def frame_message(t: int, **fields: Any) -> list[bytes]:
    fields = header(t, **fields)
    pixels = np.full(fields["shape"], t % 251, dtype=fields["dtype"])
    return [json.dumps(fields).encode(), pixels.tobytes()]


def malformed_messages() -> list[tuple[str, list[bytes]]]:
    """One message of each kind that must be rejected, with its reason token."""
    good = frame_message(900)
    missing = header(901)
    del missing["timestamp"]
    return [
        ("bad_frame_count", good[:1]),
        ("bad_frame_count", [*frame_message(902), b"trailer"]),
        ("bad_json", [b"{this is not json", good[1]]),
        ("missing_field", [json.dumps(missing).encode(), good[1]]),
        ("bad_dtype", [*frame_message(903, dtype="int64")[:1], good[1]]),
        ("buffer_size_mismatch", [frame_message(904)[0], good[1][:-1]]),
        ("shape_too_large", [json.dumps(header(905, shape=[100_000, 100_000])).encode(), b"x"]),
    ]


@contextmanager
def sender(kind: int, endpoint: str, *, bind: bool) -> Iterator[zmq.Socket[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    socket = context.socket(kind)
    socket.setsockopt(zmq.SNDTIMEO, 20_000)  # a send that cannot go out fails the test
    try:
        if bind:
            socket.bind(endpoint)
        else:
            socket.connect(endpoint)
        yield socket
    finally:
        socket.close(linger=10_000)
        context.term()


def zmq_daemon(
    make_daemon: MakeDaemon,
    *,
    socket: str = "pull",
    bind: bool = True,
    source_extra: dict[str, Any] | None = None,
    **sections: Any,
) -> tuple[Daemon, str]:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    source = {"kind": "zmq", "endpoint": endpoint, "socket": socket, "bind": bind}
    source |= source_extra or {}
    source |= sections.pop("source", {})
    daemon = make_daemon(source=source, **sections)
    return daemon, endpoint


def frames_by_t(daemon: Daemon) -> dict[int, dict[str, Any]]:
    return {e["t"]: e for e in daemon.events("frame")}


def scrape(daemon: Daemon) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    url = f"http://127.0.0.1:{daemon.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def counts_from_metrics(daemon: Daemon) -> tuple[Counter[str], Counter[str]]:
    """(frames by source, rejections by reason) as /metrics reports them."""
    frames: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    for (name, labels), value in scrape(daemon).items():
        if name == "livecell_frames_total":
            frames[dict(labels)["source"]] = int(value)
        elif name == "livecell_frames_rejected_total":
            rejected[dict(labels)["reason"]] = int(value)
    return frames, rejected


def counts_from_events(daemon: Daemon) -> tuple[Counter[str], Counter[str]]:
    frames = Counter(e["source"] for e in daemon.events("frame"))
    rejected = Counter(e["reason"] for e in daemon.events("rejected"))
    return frames, rejected


def assert_metrics_match_events(daemon: Daemon) -> None:
    matched = wait_for(
        lambda: counts_from_metrics(daemon) == counts_from_events(daemon), timeout_s=5
    )
    assert matched, f"/metrics {counts_from_metrics(daemon)} != events {counts_from_events(daemon)}"


def assert_clean_events_file(daemon: Daemon) -> None:
    events = daemon.events()
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)), "an event_id appears twice"
    for event in events:
        assert event["emitted_at"] > 0
        assert event["latency_s"] >= 0


def stop_cleanly(daemon: Daemon) -> None:
    assert daemon.stop(signal.SIGTERM) == 0, daemon.log_text()


# --------------------------------------------------------------------------- acceptance 3


def test_a_thousand_valid_messages_give_a_thousand_frame_events(make_daemon: MakeDaemon) -> None:
    daemon, endpoint = zmq_daemon(make_daemon)
    daemon.start().wait_started()

    with sender(zmq.PUSH, endpoint, bind=False) as push:
        for t in range(1000):
            push.send_multipart(frame_message(t), copy=False)

    frames = daemon.wait_events("frame", 1000, timeout_s=60)
    assert len(frames) == 1000, daemon.log_text()[-3000:]
    assert [e["t"] for e in frames] == list(range(1000)), "frames out of order or duplicated"
    for event in frames:
        assert event["source"] == "zmq"
        assert event["acquisition"] == ACQUISITION
        assert event["position"] == "P1"
        assert event["shape"] == list(SHAPE)
        assert event["dtype"] == "uint8"
        assert "path" not in event
    assert daemon.events("rejected") == []
    assert_clean_events_file(daemon)
    assert_metrics_match_events(daemon)
    frames_metric, _ = counts_from_metrics(daemon)
    assert frames_metric["zmq"] == 1000
    stop_cleanly(daemon)


def test_each_malformed_message_is_rejected_and_the_daemon_goes_on(
    make_daemon: MakeDaemon,
) -> None:
    daemon, endpoint = zmq_daemon(make_daemon)
    daemon.start().wait_started()
    bad = malformed_messages()

    with sender(zmq.PUSH, endpoint, bind=False) as push:
        push.send_multipart(frame_message(0))
        for _reason, parts in bad:
            push.send_multipart(parts)
        push.send_multipart(frame_message(0))  # duplicate (acquisition, position, t)
        push.send_multipart(frame_message(1))  # still accepted after all of that

    assert wait_for(lambda: 1 in frames_by_t(daemon), timeout_s=30), daemon.log_text()[-3000:]
    expected = [reason for reason, _ in bad] + ["duplicate"]
    rejected = daemon.wait_events("rejected", len(expected), timeout_s=5)
    assert [e["reason"] for e in rejected] == expected
    assert sorted(frames_by_t(daemon)) == [0, 1]
    for event in rejected:
        assert event["header"], "a rejected message echoes its header"
        assert event["detail"]
        assert "path" not in event
    named = {(e["reason"], e["acquisition"], e["position"], e["t"]) for e in rejected}
    for reason, t in [("duplicate", 0), ("missing_field", 901), ("bad_dtype", 903)]:
        assert (reason, ACQUISITION, "P1", t) in named, "a readable header names its frame"
    assert ("bad_json", None, None, None) in named
    assert daemon.proc is not None
    assert daemon.proc.poll() is None, "the daemon must keep running"
    assert not (daemon.state_dir / "quarantine").exists(), "messages are never quarantined"
    assert_clean_events_file(daemon)
    assert_metrics_match_events(daemon)
    _, rejected_metric = counts_from_metrics(daemon)
    assert rejected_metric == Counter(expected)
    stop_cleanly(daemon)


def test_a_bad_message_sent_again_is_counted_again_under_one_event(
    make_daemon: MakeDaemon,
) -> None:
    daemon, endpoint = zmq_daemon(make_daemon)
    daemon.start().wait_started()
    with sender(zmq.PUSH, endpoint, bind=False) as push:
        for _ in range(3):  # a sender stuck on one bad message
            push.send_multipart([b"{this is not json", bytes(4)])
        push.send_multipart(frame_message(1))
    assert wait_for(lambda: 1 in frames_by_t(daemon), timeout_s=20), daemon.log_text()[-3000:]
    assert wait_for(lambda: counts_from_metrics(daemon)[1]["bad_json"] == 3, timeout_s=5), (
        counts_from_metrics(daemon)
    )
    assert [e["reason"] for e in daemon.events("rejected")] == ["bad_json"]
    assert_clean_events_file(daemon)
    stop_cleanly(daemon)


@pytest.mark.parametrize(
    "header_bytes",
    [
        b'{"v":1,"acquisition":"\\ud800","position":"P1","t":5,"dtype":"uint8",'
        b'"shape":[2,2],"axes":"YX","timestamp":1.0}',
        b'{"v":1,"acquisition":"a","position":"P1","t":99999999999999999999999,'
        b'"dtype":"uint8","shape":[2,2],"axes":"YX","timestamp":1.0}',
        b'{"v":1,"acquisition":"a","position":"P1","t":5,"dtype":"uint8",'
        b'"shape":[2,2],"axes":"YX","timestamp":1.0,"pixel_size_um":NaN}',
        b"[" * 60_000,
    ],
    ids=["lone-surrogate", "t-overflows-sqlite", "nan-pixel-size", "deep-json"],
)
def test_headers_that_once_killed_the_daemon_are_only_rejected(
    make_daemon: MakeDaemon, header_bytes: bytes
) -> None:
    daemon, endpoint = zmq_daemon(make_daemon)
    daemon.start().wait_started()

    with sender(zmq.PUSH, endpoint, bind=False) as push:
        push.send_multipart([header_bytes, bytes(4)])
        push.send_multipart(frame_message(1))

    assert wait_for(lambda: 1 in frames_by_t(daemon), timeout_s=20), daemon.log_text()[-3000:]
    assert len(daemon.events("rejected")) == 1
    stop_cleanly(daemon)


def test_a_duplicate_after_a_restart_is_analysed_once(make_daemon: MakeDaemon) -> None:
    daemon, endpoint = zmq_daemon(make_daemon)
    daemon.start().wait_started()
    with sender(zmq.PUSH, endpoint, bind=False) as push:
        push.send_multipart(frame_message(0))
        push.send_multipart(frame_message(0))
    assert wait_for(lambda: len(daemon.events()) == 2, timeout_s=20), daemon.log_text()[-3000:]
    stop_cleanly(daemon)

    daemon.start().wait_started()
    with sender(zmq.PUSH, endpoint, bind=False) as push:
        push.send_multipart(frame_message(0))  # the same duplicate again: same event id
        push.send_multipart(frame_message(1))
    assert wait_for(lambda: 1 in frames_by_t(daemon), timeout_s=20), daemon.log_text()[-3000:]

    assert [e["t"] for e in daemon.events("frame")] == [0, 1]
    assert [e["reason"] for e in daemon.events("rejected")] == ["duplicate"]
    assert_clean_events_file(daemon)
    stop_cleanly(daemon)


def test_a_message_over_the_frame_limit_is_rejected_and_the_ones_behind_it_arrive(
    make_daemon: MakeDaemon,
) -> None:
    """With max_frame_mib = 1, a 1.5 MiB buffer behind a small header reaches livecell
    (ZeroMQ lets a part through up to twice the limit) and is rejected by name; the
    frames sent after it on the same connection are all analysed."""
    daemon, endpoint = zmq_daemon(make_daemon, source_extra={"max_frame_mib": 1.0})
    daemon.start().wait_started()
    with sender(zmq.PUSH, endpoint, bind=False) as push:
        push.send_multipart(frame_message(0))
        push.send_multipart([frame_message(1)[0], bytes(3 * 512 * 1024)])
        for t in range(2, 12):
            push.send_multipart(frame_message(t))
    assert wait_for(lambda: len(daemon.events()) == 12, timeout_s=20), daemon.log_text()[-3000:]
    assert sorted(frames_by_t(daemon)) == [0, *range(2, 12)]
    assert [e["reason"] for e in daemon.events("rejected")] == ["buffer_size_mismatch"]
    stop_cleanly(daemon)


def test_an_address_already_taken_is_a_configuration_error(make_daemon: MakeDaemon) -> None:
    """The source and the PUB sink bind before the daemon says it started: exit 2,
    naming the key, and no traceback."""
    context: zmq.Context[Any] = zmq.Context()
    taken = context.socket(zmq.PULL)
    port = taken.bind_to_random_port("tcp://127.0.0.1")
    try:
        for key, sections in (
            ("source.endpoint", {"source": {"endpoint": f"tcp://127.0.0.1:{port}"}}),
            ("sinks.zmq_pub", {"sinks": {"zmq_pub": f"tcp://127.0.0.1:{port}"}}),
        ):
            daemon, _ = zmq_daemon(make_daemon, **sections)
            result = subprocess.run(
                [sys.executable, "-m", "livecell", "run", "-c", str(daemon.config)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 2, result.stderr
            assert key in result.stderr
            assert "Traceback" not in result.stderr
    finally:
        taken.close(linger=0)
        context.term()


# --------------------------------------------------------------------------- socket kinds


def test_pull_connect_reads_from_a_binding_push(make_daemon: MakeDaemon) -> None:
    daemon, endpoint = zmq_daemon(make_daemon, bind=False)
    with sender(zmq.PUSH, endpoint, bind=True) as push:
        daemon.start().wait_started()
        for t in range(50):
            push.send_multipart(frame_message(t))

    frames = daemon.wait_events("frame", 50, timeout_s=30)
    assert [e["t"] for e in frames] == list(range(50)), daemon.log_text()[-3000:]
    stop_cleanly(daemon)


def test_sub_connects_to_a_publisher(make_daemon: MakeDaemon) -> None:
    daemon, endpoint = zmq_daemon(make_daemon, socket="sub", bind=False)
    with sender(zmq.PUB, endpoint, bind=True) as pub:
        daemon.start().wait_started()
        # Slow joiner: a PUB drops everything until the subscription has arrived,
        # so publish probes until one comes through as a frame event.
        probe = 0
        deadline = time.monotonic() + 20
        while not daemon.events("frame") and time.monotonic() < deadline:
            pub.send_multipart(frame_message(probe, position="probe"))
            probe += 1
            time.sleep(0.05)
        assert daemon.events("frame"), f"no probe arrived:\n{daemon.log_text()[-3000:]}"
        for t in range(50):
            pub.send_multipart(frame_message(t))

    wanted = set(range(50))
    assert wait_for(
        lambda: wanted <= {e["t"] for e in daemon.events("frame") if e["position"] == "P1"},
        timeout_s=30,
    ), daemon.log_text()[-3000:]
    stop_cleanly(daemon)


# --------------------------------------------------------------------------- events out


def test_the_pub_sink_sends_kind_and_json(make_daemon: MakeDaemon) -> None:
    pub_endpoint = f"tcp://127.0.0.1:{free_port()}"
    daemon, endpoint = zmq_daemon(make_daemon, sinks={"zmq_pub": pub_endpoint})
    daemon.start().wait_started()
    context: zmq.Context[Any] = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVTIMEO, 100)
    sub.connect(pub_endpoint)
    received: list[list[bytes]] = []
    try:
        with sender(zmq.PUSH, endpoint, bind=False) as push:
            # Slow joiner again: send probe frames until the first event comes back.
            probe = 0
            deadline = time.monotonic() + 20
            while not received and time.monotonic() < deadline:
                push.send_multipart(frame_message(probe, position="probe"))
                probe += 1
                received += _receive_all(sub)
            assert received, f"no event came back on {pub_endpoint}"
            for t in range(10):
                push.send_multipart(frame_message(t))
            push.send_multipart([b"{oops", b""])

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _has_all(received):
            received += _receive_all(sub)
    finally:
        sub.close(linger=0)
        context.term()

    assert _has_all(received), f"got {[json.loads(m[1])['t'] for m in received]}"
    on_file = {e["event_id"]: e for e in daemon.events()}
    for message in received:
        assert len(message) == 2
        kind, record = message[0].decode(), json.loads(message[1])
        assert kind == record["kind"]
        assert on_file[record["event_id"]] == record, "the stream carries the file's record"
    stop_cleanly(daemon)


def _receive_all(sub: zmq.Socket[Any]) -> list[list[bytes]]:
    messages = []
    while True:
        try:
            messages.append(sub.recv_multipart())
        except zmq.Again:
            return messages


def _has_all(received: list[list[bytes]]) -> bool:
    records = [json.loads(m[1]) for m in received]
    frames = {r["t"] for r in records if r["kind"] == "frame" and r["position"] == "P1"}
    reasons = {r["reason"] for r in records if r["kind"] == "rejected"}
    return frames == set(range(10)) and "bad_json" in reasons
