"""The dashboard as the pipeline sees it: an event sink and a frame observer that never wait.

Lifecycle: :func:`open_dashboard` binds the HTTP server (an ``OSError`` if the
address is taken) and starts two daemon threads, the server's and the
dashboard's own -> ``publish`` (committed event records) and ``observe_frame``
(each analysed frame and its overlay) are called from the analysis thread ->
``close`` stops both threads and the server, disconnecting every page.

The analysis thread only hands references over: ``publish`` puts the batch on a
bounded queue (a full queue drops it, counted), ``observe_frame`` replaces the
position's pending frame in a dict (a frame not yet viewed when the next one of
its position arrives is skipped, counted). Everything else (downscaling,
outlines, crops, the store, fan-out to the pages) happens on the dashboard's
thread; PNGs are encoded in the HTTP handlers' threads.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from livecell.analysis.overlay import Overlay
from livecell.config import split_address
from livecell.dashboard.hub import Hub, sse_message
from livecell.dashboard.server import DashboardServer
from livecell.dashboard.store import Limits, Store
from livecell.dashboard.views import make_view
from livecell.frames import Frame

__all__ = ["Dashboard", "backend_name", "open_dashboard"]

log = structlog.get_logger("livecell.dashboard")

_SEED_BYTES = 4 * 2**20  # the tail of the events file read at start-up


class Dashboard:
    """``EventSink`` (``livecell/sinks/_protocol.py``) and ``FrameObserver``
    (``livecell/analysis/overlay.py``) behind the live page."""

    name = "dashboard"

    def __init__(
        self,
        server: DashboardServer,
        store: Store,
        hub: Hub,
        *,
        seed_events: Path | None = None,
        inbox_batches: int = 1000,
    ) -> None:
        self.server = server
        self.store = store
        self.hub = hub
        self._seed_events = seed_events
        self._inbox: queue.Queue[Sequence[Mapping[str, Any]]] = queue.Queue(maxsize=inbox_batches)
        self._pending: dict[str, tuple[Frame, Overlay | None]] = {}
        self._pending_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._run, name="livecell-dashboard", daemon=True)
        self._serving = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},  # how soon close() returns
            name="livecell-dashboard-http",
            daemon=True,
        )

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        self._worker.start()
        self._serving.start()

    # ------------------------------------------------------------------ analysis thread

    def publish(self, records: Sequence[Mapping[str, Any]]) -> None:
        try:
            self._inbox.put_nowait(records)
        except queue.Full:
            self.store.count_dropped(events=len(records))
        self._wake.set()

    def observe_frame(self, frame: Frame, overlay: Overlay | None) -> None:
        with self._pending_lock:
            skipped = self._pending.get(frame.key.position)
            self._pending[frame.key.position] = (frame, overlay)
        if skipped is not None:
            self.store.count_dropped(frames=1)
        self._wake.set()

    def close(self) -> None:
        """Stop serving and disconnect every page; a second call does nothing."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        self.hub.close()
        self.server.shutdown()
        self.server.server_close()
        self._worker.join(timeout=5)

    # ------------------------------------------------------------------ dashboard thread

    def _run(self) -> None:
        if self._seed_events is not None:
            self._seed(self._seed_events)
        while not self._stop.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            try:
                self._view_pending()
                self._take_events()
            except Exception:  # the page shows less; analysis goes on regardless
                log.exception("dashboard update failed")

    def _view_pending(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        limits = self.store.limits
        for frame, overlay in pending.values():
            parts = make_view(
                frame, overlay, max_side_px=limits.max_side_px, crop_px=limits.crop_px
            )
            del frame
            self.store.add_view(parts)
            view = parts.view
            self.hub.broadcast(
                sse_message({"kind": "view", "position": view.position, "t": view.t}, event="view")
            )

    def _take_events(self) -> None:
        while True:
            try:
                records = self._inbox.get_nowait()
            except queue.Empty:
                return
            for record in records:
                self.hub.broadcast(sse_message(self.store.add_record(record)))

    def _seed(self, path: Path) -> None:
        """The tail of the events file, so a restarted daemon's page shows what came before."""
        try:
            with path.open("rb") as f:
                size = f.seek(0, 2)
                f.seek(max(0, size - _SEED_BYTES))
                lines = f.read().splitlines()[1 if size > _SEED_BYTES else 0 :]
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("cannot read earlier events", path=str(path), error=str(exc))
            return
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn last line: the pipeline repairs it
            if isinstance(record, dict):
                self.store.add_record(record, seeded=True)


def backend_name(stage: object, mode: str, configured: str) -> str:
    """The engine backend the header shows: the patch model's own, else the configured one
    (``auto`` runs ONNX Runtime in nanowell mode, ``livecell.analysis.nanowell``)."""
    from livecell.analysis.patches import PatchStage

    if isinstance(stage, PatchStage):
        return stage.model.backend.name
    if mode == "none":
        return "none"
    return "onnxruntime" if configured == "auto" else configured


def open_dashboard(
    address: str,
    *,
    mode: str,
    backend: str,
    seed_events: Path | None = None,
    limits: Limits | None = None,
) -> Dashboard:
    """Bind ``host:port`` and start serving; raise ``OSError`` if the address is taken."""
    host, port = split_address(address)
    store = Store(limits or Limits(), mode=mode, backend=backend)
    hub = Hub()
    dashboard = Dashboard(
        DashboardServer((host, port), store, hub), store, hub, seed_events=seed_events
    )
    dashboard.start()
    log.info("dashboard", url=dashboard.url)
    return dashboard
