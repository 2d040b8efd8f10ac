"""Real peers for the trigger tests: an HTTP server, a ZMQ REP/ROUTER socket, a script.

Each records what it received, with the time, so tests can check what arrived
and how the attempts were spaced. Imported as ``from action_peers import ...``.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import zmq


def death_event(**fields: Any) -> dict[str, Any]:
    """A ``death`` record as the pipeline publishes it (SPEC section 4)."""
    record: dict[str, Any] = {
        "event_id": "d" * 32,
        "kind": "death",
        "v": 1,
        "acquisition": "chip1",
        "position": "Pos0",
        "t": 12,
        "emitted_at": 1_700_000_000.0,
        "latency_s": 0.2,
        "pathway": "apoptosis",
        "onset_t": 10,
        "confidence": 0.95,
        "well": "r001c002",
        "track": 3,
    }
    record.update(fields)
    return record


def frame_event(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "f" * 32,
        "kind": "frame",
        "v": 1,
        "acquisition": "chip1",
        "position": "Pos0",
        "t": 12,
        "emitted_at": 1_700_000_000.0,
        "latency_s": 0.1,
        "shape": [16, 16],
        "dtype": "uint16",
        "source": "watch",
    }
    record.update(fields)
    return record


def wait_until(condition: Any, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())


def dead_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class HttpPeer:
    """Answers POSTs: 500 to the first ``fail_first``, else 200 after ``hang_s``."""

    fail_first: int = 0
    hang_s: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    @contextmanager
    def serving(self) -> Iterator[HttpPeer]:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                peer.times.append(time.monotonic())
                if peer.hang_s:
                    peer.release.wait(peer.hang_s)
                attempt = len(peer.times)
                ok = attempt > peer.fail_first and self.headers["Content-Type"] == (
                    "application/json"
                )
                if ok:
                    peer.received.append(json.loads(body))
                self.send_response(200 if ok else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}/trigger"
        try:
            yield self
        finally:
            self.release.set()
            server.shutdown()
            server.server_close()
            thread.join(5)


@dataclass
class ZmqPeer:
    """A ROUTER standing in for a REP server: replies ``ok`` to each request except the
    first ``ignore_first`` (or all, with ``never_reply``), so a lost reply can be staged."""

    ignore_first: int = 0
    never_reply: bool = False
    received: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    endpoint: str = ""

    @contextmanager
    def serving(self) -> Iterator[ZmqPeer]:
        context: zmq.Context[Any] = zmq.Context()
        router = context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                if not router.poll(20, zmq.POLLIN):
                    continue
                identity, empty, body = router.recv_multipart()
                self.requests += 1
                if self.never_reply or self.requests <= self.ignore_first:
                    continue
                self.received.append(json.loads(body))
                router.send_multipart([identity, empty, b"ok"])

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(5)
            router.close(linger=0)
            context.term()


def recording_script(tmp_path: Path, *, fail_first: int = 0, sleep_s: float = 0.0) -> Path:
    """A Python script that appends its standard input, one line, to the file given as
    its first argument; it exits 1 on its first ``fail_first`` runs (counted in a file
    beside it) and sleeps ``sleep_s`` first."""
    script = tmp_path / "record_event.py"
    script.write_text(
        "import pathlib, sys, time\n"
        f"time.sleep({sleep_s!r})\n"
        "out = pathlib.Path(sys.argv[1])\n"
        "runs = out.with_suffix('.runs')\n"
        "n = int(runs.read_text()) + 1 if runs.exists() else 1\n"
        "runs.write_text(str(n))\n"
        f"if n <= {fail_first}:\n"
        "    sys.stderr.write(f'refused run {n}')\n"
        "    sys.exit(1)\n"
        "with out.open('a') as f:\n"
        "    f.write(sys.stdin.read().replace('\\n', ' ') + '\\n')\n"
    )
    return script


def script_command(script: Path, out: Path) -> list[str]:
    return [sys.executable, str(script), str(out)]


def recorded(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
