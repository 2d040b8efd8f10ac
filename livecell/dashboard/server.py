"""The dashboard's HTTP server: read-only, GET and HEAD only, one thread per request.

Routes: ``/`` (the page) and ``/static/NAME`` (its script, worker and style,
shipped in ``livecell/dashboard/static/``); ``/events`` (Server-Sent Events: a
``hello`` naming this run, then the recent history, then every new event, with a
comment every ``keepalive_s`` so proxies keep the stream open); ``/api/state``
and ``/api/timeline`` (JSON); ``/img/frame.png``, ``/img/crop.png`` and
``/img/patch.png`` (PNG, rendered here, in the handler's thread, from the
store's downscaled views and cached per position, frame and state version).
Every other method is answered 405: the page can change nothing.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog

from livecell.dashboard.hub import Hub, sse_message
from livecell.dashboard.render import PATCH_COLOURS, STATE_COLOURS, encode_png, render_frame
from livecell.dashboard.store import Store

__all__ = ["STATIC_FILES", "DashboardServer"]

log = structlog.get_logger("livecell.dashboard")

STATIC_FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "events-worker.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
_CSP = (
    "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; worker-src 'self'; font-src 'none'; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_ALLOWED = "GET, HEAD"
MAX_CONNECTIONS = 64
"""Open connections at once: pages (each holds an event stream and a few image loads)
for a handful of viewers, far under the daemon's file-descriptor limit."""
MAX_EVENT_STREAMS = 32
"""Event streams at once (each holds its connection for as long as its page is open):
half the connections, so open pages cannot take the slots the others need."""
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
CONNECTION_TIMEOUT_S = 30.0
"""A connection with no request, or not reading, for this long is dropped (event
streams write a keep-alive every 15 s, so a live page never waits this long)."""


class _PngCache:
    """Encoded PNGs by key, the oldest dropped once ``budget`` bytes are held.

    One encoding per key however many pages ask at once: the first makes it, the others
    wait for it (ten tabs asking for a new frame together cost one encoding, not ten).
    """

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._items: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._making: dict[tuple[Any, ...], threading.Event] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def get_or_make(self, key: tuple[Any, ...], make: Callable[[], bytes]) -> bytes:
        while True:
            with self._lock:
                found = self._items.get(key)
                if found is not None:
                    self._items.move_to_end(key)
                    return found
                making = self._making.get(key)
                if making is None:
                    done = self._making[key] = threading.Event()
                    break
            making.wait(timeout=10)  # then look again (made, or its maker failed)
        try:
            data = make()  # outside the lock: other keys are served meanwhile
            with self._lock:
                self._items[key] = data
                self._bytes += len(data)
                while self._bytes > self._budget and self._items:
                    _, dropped = self._items.popitem(last=False)
                    self._bytes -= len(dropped)
            return data
        finally:
            with self._lock:
                del self._making[key]
            done.set()


class DashboardServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` holding what the handlers read: the store and the hub.

    Bounded: at most ``max_connections`` connections at once (more are closed at once),
    and a connection that sends no request, or does not read what it is sent, for
    ``connection_timeout_s`` is dropped; idle or stalled clients cannot take the file
    descriptors the daemon needs for frames.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        store: Store,
        hub: Hub,
        *,
        keepalive_s: float = 15.0,
        max_connections: int = MAX_CONNECTIONS,
        connection_timeout_s: float = CONNECTION_TIMEOUT_S,
    ) -> None:
        if ":" in address[0]:  # an IPv6 host (split_address took its brackets off)
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.max_connections = max_connections
        self.connection_timeout_s = connection_timeout_s
        self.store = store
        self.hub = hub
        self.boot = uuid.uuid4().hex
        self.keepalive_s = keepalive_s
        self.pngs = _PngCache(16 * 2**20)
        self._connections = threading.BoundedSemaphore(max_connections)
        self.event_streams = threading.BoundedSemaphore(max(1, max_connections // 2))
        host = str(address[0])
        loopback = host in _LOOPBACK_NAMES or host.startswith("127.")
        self.allowed_hosts = (_LOOPBACK_NAMES | {host}) if loopback else None
        self.static = {
            name: resources.files("livecell.dashboard").joinpath("static", name).read_bytes()
            for name in STATIC_FILES
        }

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._connections.acquire(blocking=False):
            log.warning("dashboard connection refused: too many open", limit=self.max_connections)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._connections.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), self.server_address[1]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "livecell-dashboard"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.connection_timeout_s)  # each read and write

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http", client=self.address_string(), request=format % args)

    # ------------------------------------------------------------------ methods

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Any method without a ``do_`` (POST, PUT, DELETE, PATCH, ...) is 405, not 501."""
        if code == HTTPStatus.NOT_IMPLEMENTED:
            code, message = HTTPStatus.METHOD_NOT_ALLOWED, "the dashboard is read-only"
        if message is not None:  # the status line is Latin-1: escape what a query brought
            message = message.encode("ascii", "backslashreplace").decode("ascii")
        super().send_error(code, message, explain)

    def end_headers(self) -> None:
        if getattr(self, "_status", None) == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", _ALLOWED)
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    # ------------------------------------------------------------------ routes

    def _host_allowed(self) -> bool:
        """A dashboard on a loopback address answers only to loopback names in ``Host``:
        a web page elsewhere cannot point a name of its own at 127.0.0.1 (DNS rebinding)
        and read the dashboard through the browser. Bound elsewhere, any name goes."""
        allowed = self.server.allowed_hosts
        if allowed is None:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        name = host[1 : host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        return name in allowed

    def _route(self, *, head: bool) -> None:
        if not self._host_allowed():
            self.send_error(HTTPStatus.MISDIRECTED_REQUEST, "not this dashboard's host name")
            return
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = url.path
        try:
            if path in ("/", "/index.html"):
                self._static("index.html", head)
            elif path.startswith("/static/") and path[len("/static/") :] in STATIC_FILES:
                self._static(path[len("/static/") :], head)
            elif path == "/favicon.ico":  # none: no request the browser makes by itself fails
                self.send_response(HTTPStatus.NO_CONTENT)
                self.end_headers()
            elif path == "/events":
                self._events(head)
            elif path == "/api/state":
                self._json(self._state(), head)
            elif path == "/api/timeline":
                self._timeline(query, head)
            elif path == "/img/frame.png":
                self._frame_png(query, head)
            elif path == "/img/crop.png":
                self._crop_png(query, head)
            elif path == "/img/patch.png":
                self._patch_png(query, head)
            else:
                self.send_error(HTTPStatus.NOT_FOUND, f"no such page: {path}")
        except _BadRequest as exc:
            self.send_error(HTTPStatus.BAD_REQUEST, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            return
        except Exception:  # a bug in one view must not take the server down
            log.exception("dashboard request failed", path=path)
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR)

    def _state(self) -> dict[str, Any]:
        state = self.server.store.state()
        state["boot"] = self.server.boot
        state["legend"] = {"states": STATE_COLOURS, "patches": PATCH_COLOURS}
        return state

    def _static(self, name: str, head: bool) -> None:
        self._send(HTTPStatus.OK, STATIC_FILES[name], self.server.static[name], head)

    def _json(self, data: Mapping[str, Any] | None, head: bool) -> None:
        if data is None:
            self.send_error(HTTPStatus.NOT_FOUND, "nothing known about that yet")
            return
        body = json.dumps(data, separators=(",", ":"), allow_nan=False, default=str).encode()
        self._send(HTTPStatus.OK, "application/json", body, head)

    def _png(self, data: bytes | None, head: bool, *, immutable: bool) -> None:
        if data is None:
            self.send_error(HTTPStatus.NOT_FOUND, "no such image (yet, or any more)")
            return
        cache = "max-age=3600, immutable" if immutable else "no-cache"
        self._send(HTTPStatus.OK, "image/png", data, head, cache=cache)

    def _send(
        self, status: int, content_type: str, body: bytes, head: bool, *, cache: str = "no-cache"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.send_header("Content-Security-Policy", _CSP)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _timeline(self, query: Mapping[str, str], head: bool) -> None:
        position = _required(query, "position")
        store = self.server.store
        if "patch" in query:
            row, col = _patch(query["patch"])
            self._json(store.patch_timeline(position, row, col), head)
        else:
            track = _int(query, "track") if "track" in query else None
            self._json(store.well_timeline(position, _required(query, "well"), track), head)

    def _frame_png(self, query: Mapping[str, str], head: bool) -> None:
        """The latest view of the position, whatever ``t`` asks (it only busts caches)."""
        position = _required(query, "position")
        snapshot = self.server.store.frame_snapshot(position)
        if snapshot is None:
            self._png(None, head, immutable=False)
            return
        view, wells, tracks, patch_states = snapshot

        def make() -> bytes:
            image = render_frame(
                view, well_states=wells, track_states=tracks, patch_states=patch_states
            )
            return encode_png(image)

        colours = (
            tuple(sorted(wells.items())),
            tuple(sorted(tracks.items())),
            None if patch_states is None else tuple(map(tuple, patch_states)),
        )  # one encoding per frame and colouring, however often states are asked for
        key = ("frame", view.acquisition, position, view.t, hash(colours))
        data = self.server.pngs.get_or_make(key, make)
        self._png(data, head, immutable=False)

    def _crop_png(self, query: Mapping[str, str], head: bool) -> None:
        key = ("crop", _required(query, "position"), _int(query, "track"), _int(query, "t"))
        crop = self.server.store.crop(key)
        data = None if crop is None else self.server.pngs.get_or_make(key, lambda: encode_png(crop))
        self._png(data, head, immutable=True)

    def _patch_png(self, query: Mapping[str, str], head: bool) -> None:
        position, (row, col), t = (
            _required(query, "position"),
            _patch(query.get("patch", "")),
            _int(query, "t"),
        )
        tile = self.server.store.patch_crop(position, row, col, t)
        key = ("patch", position, row, col, t)
        data = None if tile is None else self.server.pngs.get_or_make(key, lambda: encode_png(tile))
        self._png(data, head, immutable=True)

    def _events(self, head: bool) -> None:
        if not self.server.event_streams.acquire(blocking=False):
            self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "too many pages open on this dashboard")
            return
        try:
            self._stream_events(head)
        finally:
            self.server.event_streams.release()

    def _stream_events(self, head: bool) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        if head:
            return
        hub, store = self.server.hub, self.server.store
        client = (
            hub.subscribe()
        )  # before the history: nothing falls between (the page drops repeats)
        try:
            hello = {"boot": self.server.boot, "mode": store.mode, "backend": store.backend}
            self.wfile.write(b"retry: 2000\n\n" + sse_message(hello, event="hello"))
            self.wfile.write(b"".join(sse_message(m) for m in store.history()))
            self.wfile.flush()
            while True:
                messages = client.take(self.server.keepalive_s)
                if messages is None:
                    return
                self.wfile.write(b"".join(messages) if messages else b": keepalive\n\n")
                self.wfile.flush()
        except OSError:  # the page went away
            return
        finally:
            hub.unsubscribe(client)


class _BadRequest(ValueError):
    """A query parameter is missing or malformed; the message names it."""


def _required(query: Mapping[str, str], name: str) -> str:
    value = query.get(name)
    if not value:
        raise _BadRequest(f"query parameter {name!r} is required")
    return value


def _int(query: Mapping[str, str], name: str) -> int:
    value = _required(query, name)
    try:
        return int(value)
    except ValueError:
        raise _BadRequest(f"query parameter {name!r} must be an integer, got {value!r}") from None


def _patch(value: str) -> tuple[int, int]:
    row, sep, col = value.partition(",")
    try:
        if not sep:
            raise ValueError
        return int(row), int(col)
    except ValueError:
        raise _BadRequest(f"query parameter 'patch' must be 'row,col', got {value!r}") from None
