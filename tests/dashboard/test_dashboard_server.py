"""The dashboard's HTTP server for real: a socket on 127.0.0.1, a frame in, pages out."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from daemons import ipv6_loopback

from livecell.analysis.overlay import CellMark, NanowellOverlay, WellCells
from livecell.dashboard import Dashboard, open_dashboard
from livecell.dashboard.hub import Hub
from livecell.dashboard.server import DashboardServer
from livecell.dashboard.store import Limits, Store
from livecell.frames import Frame, FrameKey


@pytest.fixture
def dashboard() -> Iterator[Dashboard]:
    served = open_dashboard("127.0.0.1:0", mode="nanowell", backend="onnxruntime")
    try:
        yield served
    finally:
        served.close()


def _request(d: Dashboard, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    host, port = d.server.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=5)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def _get_json(d: Dashboard, path: str) -> Any:
    status, _, body = _request(d, "GET", path)
    assert status == 200, body
    return json.loads(body)


def _wait(condition: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def _chip(t: int) -> tuple[Frame, NanowellOverlay]:
    """A 1024 px frame with one well and one round cell (track 5)."""
    pixels = np.full((1024, 1024), 1000, np.uint16)
    labels = np.zeros((400, 400), np.int32)
    cv2.circle(labels, (200, 200), 40, 3, thickness=-1)
    pixels[100:500, 100:500][labels == 3] = 3000
    well = WellCells("r000c000", 100, 100, 500, 500, labels, (CellMark(5, 300.0, 300.0, (3,)),))
    overlay = NanowellOverlay(t, (well,), ("live", "necrosis"), ((5, (0.75, 0.25)),))
    return Frame(FrameKey("acq", "Pos0", t), pixels, "YX", "watch", completed_at=0.0), overlay


def _viewed(d: Dashboard) -> int | None:
    snapshot = d.store.frame_snapshot("Pos0")
    return None if snapshot is None else snapshot[0].t


def _record(kind: str, t: int, **fields: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "acquisition": "acq",
        "position": "Pos0",
        "t": t,
        "emitted_at": 10.0,
        "latency_s": 0.5,
        **fields,
    }


def test_a_frame_and_its_events_become_state_images_and_a_timeline(dashboard: Dashboard) -> None:
    for t in range(3):
        dashboard.observe_frame(*_chip(t))
        dashboard.publish([_record("frame", t)])
        _wait(lambda t=t: _viewed(dashboard) == t)  # else a newer frame replaces it (by design)
    dashboard.publish(
        [_record("death", 2, well="r000c000", track=5, onset_t=1, pathway="necrosis")]
    )
    _wait(lambda: dashboard.store.state()["header"]["frames_done"] == 3)
    state = _get_json(dashboard, "/api/state")
    assert state["header"]["mode"] == "nanowell"
    (position,) = state["positions"]
    (well,) = position["wells"]
    assert well["state"] == "death"
    assert well["box"] == pytest.approx([100 / 1024, 100 / 1024, 500 / 1024, 500 / 1024])
    assert state["legend"]["states"]["death"] == "#f85149"

    status, headers, body = _request(dashboard, "GET", "/img/frame.png?position=Pos0&t=2")
    assert status == 200
    assert headers["Content-Type"] == "image/png"
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    assert image.shape == (768, 768, 3)  # downscaled from 1024
    b, g, r = (int(v) for v in image[75, 225])  # the well's top border, in the death colour
    assert (r, g, b) == (0xF8, 0x51, 0x49)

    timeline = _get_json(dashboard, "/api/timeline?position=Pos0&well=r000c000")
    (track,) = timeline["tracks"]
    assert [p["state"] for p in track["points"]] == ["live", "death", "death"]
    assert track["points"][0]["p_death"] == 0.25
    status, _, crop = _request(dashboard, "GET", "/img/crop.png?position=Pos0&track=5&t=1")
    assert status == 200
    decoded = cv2.imdecode(np.frombuffer(crop, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None
    assert decoded.shape == (48, 48)


def test_only_get_and_head_are_served(dashboard: Dashboard) -> None:
    status, headers, body = _request(dashboard, "HEAD", "/")
    assert status == 200
    assert body == b""
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "FROB"):
        for path in ("/", "/api/state", "/events"):
            status, headers, _ = _request(dashboard, method, path)
            assert status == 405, (method, path)
            assert headers["Allow"] == "GET, HEAD"


def test_bad_requests_are_named(dashboard: Dashboard) -> None:
    status, _, body = _request(dashboard, "GET", "/api/timeline?position=Pos0&track=x&well=w")
    assert status == 400
    assert b"track" in body
    assert _request(dashboard, "GET", "/api/timeline?well=w")[0] == 400
    assert _request(dashboard, "GET", "/api/timeline?position=Nope&well=w")[0] == 404
    assert _request(dashboard, "GET", "/img/frame.png?position=Nope")[0] == 404
    assert _request(dashboard, "GET", "/etc/passwd")[0] == 404
    assert _request(dashboard, "GET", "/static/../server.py")[0] == 404


def test_a_query_value_outside_latin_1_is_a_400_not_a_dropped_connection(
    dashboard: Dashboard,
) -> None:
    status, _, body = _request(dashboard, "GET", "/img/crop.png?position=p&track=%E2%82%AC&t=1")
    assert status == 400
    assert b"track" in body


def test_idle_and_surplus_connections_cannot_hold_the_server() -> None:
    """Connections that never send a request are dropped after the timeout, and those
    over the limit are closed at once: the file descriptors the daemon needs for frames
    stay free, and a real request is answered once the idle ones are gone."""
    server = DashboardServer(
        ("127.0.0.1", 0),
        Store(Limits(), mode="none", backend="x"),
        Hub(),
        max_connections=4,
        connection_timeout_s=0.5,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    idle = [socket.create_connection((str(host), int(port)), timeout=5) for _ in range(6)]
    try:
        closed_at_once = 0
        for sock in idle[4:]:
            closed_at_once += sock.recv(1) == b""  # over the limit: closed without a word
        assert closed_at_once == 2
        for sock in idle[:4]:  # the idle ones: dropped once the timeout passes
            assert sock.recv(65536) == b""
        conn = http.client.HTTPConnection(str(host), int(port), timeout=5)
        conn.request("GET", "/api/state")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        for sock in idle:
            sock.close()
        server.shutdown()
        server.server_close()


def _status_for_host(d: Dashboard, host_header: str) -> int:
    host, port = d.server.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=5)
    try:
        conn.putrequest("GET", "/api/state", skip_host=True)
        conn.putheader("Host", host_header)
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_loopback_dashboard_answers_only_to_loopback_host_names(dashboard: Dashboard) -> None:
    """DNS rebinding: a page on evil.example whose name is made to point at 127.0.0.1
    would otherwise read the dashboard through the visitor's browser."""
    port = dashboard.server.server_address[1]
    assert _status_for_host(dashboard, f"evil.example:{port}") == 421
    assert _status_for_host(dashboard, "") == 421
    for name in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST"):
        assert _status_for_host(dashboard, name) == 200, name


def test_event_streams_leave_connections_for_the_rest() -> None:
    server = DashboardServer(
        ("127.0.0.1", 0), Store(Limits(), mode="none", backend="x"), Hub(), max_connections=4
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    streams: list[socket.socket] = []
    try:
        for _ in range(3):  # two may stream (half of four); the third is turned away
            sock = socket.create_connection((str(host), int(port)), timeout=5)
            sock.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            streams.append(sock)
        answers = [sock.recv(64).split(b"\r\n")[0].split(b" ")[1] for sock in streams]
        assert sorted(answers) == [b"200", b"200", b"503"]
        conn = http.client.HTTPConnection(str(host), int(port), timeout=5)
        conn.request("GET", "/api/state")
        assert conn.getresponse().status == 200, "a slot is left for everything else"
        conn.close()
    finally:
        for sock in streams:
            sock.close()
        server.shutdown()
        server.server_close()


def test_a_page_that_connects_gets_hello_then_history_then_live_events(
    dashboard: Dashboard,
) -> None:
    dashboard.publish([_record("death", 1, well="r000c000", track=5, onset_t=1)])
    _wait(lambda: len(dashboard.store.history()) == 1)
    host, port = dashboard.server.server_address[:2]
    with socket.create_connection((str(host), int(port)), timeout=5) as sock:
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        reader = sock.makefile("rb")
        _wait(lambda: dashboard.hub.clients == 1)
        dashboard.publish([_record("contact_start", 2, well="r000c000", tracks=[5, 6])])
        lines: list[bytes] = []
        while b"contact_start" not in b"".join(lines):
            lines.append(reader.readline())
        text = b"".join(lines).decode()
    assert "text/event-stream" in text
    assert text.index("event: hello") < text.index('"death"') < text.index('"contact_start"')
    assert "id: 1\n" in text


def test_closing_disconnects_pages(dashboard: Dashboard) -> None:
    host, port = dashboard.server.server_address[:2]
    with socket.create_connection((str(host), int(port)), timeout=5) as sock:
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        _wait(lambda: dashboard.hub.clients == 1)
        dashboard.close()
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert b"event: hello" in data  # then the server closed the stream


def test_publish_and_observe_never_wait_for_the_dashboard() -> None:
    """Not started: nothing drains; the analysis thread must still return at once."""
    store = Store(Limits(), mode="nanowell", backend="x")
    hub = Hub()
    server = DashboardServer(("127.0.0.1", 0), store, hub)
    stalled = Dashboard(server, store, hub, inbox_batches=2)
    try:
        started = time.perf_counter()
        for t in range(50):
            stalled.publish([_record("frame", t)])
            stalled.observe_frame(*_chip(t))
        assert time.perf_counter() - started < 0.5
        header = store.state()["header"]
        assert header["dropped_events"] == 48
        assert header["dropped_frames"] == 49  # one pending frame per position, the newest
    finally:
        server.server_close()


def test_a_restarted_daemon_shows_what_the_events_file_already_holds(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    lines = [_record("frame", 0), _record("death", 0, well="r001c001", track=9, onset_t=0)]
    events.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"torn', encoding="utf-8")
    restarted = open_dashboard(
        "127.0.0.1:0", mode="nanowell", backend="onnxruntime", seed_events=events
    )
    try:
        _wait(lambda: any(m["kind"] == "death" for m in restarted.store.history()))
        (position,) = _get_json(restarted, "/api/state")["positions"]
        assert position["wells"][0]["state"] == "death"
        assert _get_json(restarted, "/api/state")["header"]["frames_done"] == 0  # not this run's
    finally:
        restarted.close()


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this host")
def test_an_ipv6_address_serves_the_page() -> None:
    """``[::1]:PORT`` passes the config's check; the server was IPv4 only and failed."""
    served = open_dashboard("[::1]:0", mode="nanowell", backend="onnxruntime")
    try:
        assert served.url.startswith("http://[::1]:")
        assert _get_json(served, "/api/state")["positions"] == []
    finally:
        served.close()
