"""Prometheus metrics (SPEC section 6), on a registry of our own, served over HTTP.

The registry is created per process by ``Metrics()`` and passed down; nothing
is registered on prometheus_client's global registry at import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from livecell.config import split_address

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 300)
_STAGE_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.frames = Counter(
            "livecell_frames", "Frames accepted, by source", ["source"], registry=r
        )
        self.rejected = Counter(
            "livecell_frames_rejected",
            "Frames and messages rejected, by reason",
            ["reason"],
            registry=r,
        )
        self.events = Counter("livecell_events", "Events written, by kind", ["kind"], registry=r)
        self.frame_latency = Histogram(
            "livecell_frame_latency_seconds",
            "Seconds from a frame being complete to its last event being written",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "livecell_stage_seconds",
            "Seconds spent per frame in each stage",
            ["stage"],
            buckets=_STAGE_BUCKETS_S,
            registry=r,
        )
        self.queue_depth = Gauge("livecell_queue_depth", "Frames waiting for analysis", registry=r)
        self.engine_items = Counter(
            "livecell_engine_items",
            "Items (patches, crops) run through an engine",
            ["model", "backend"],
            registry=r,
        )
        self.stage_errors = Counter(
            "livecell_stage_errors",
            "Frames whose analysis stage raised (frame event still sent)",
            ["stage"],
            registry=r,
        )
        self.actions = Counter(
            "livecell_actions",
            "Acquisition trigger outcomes: sent, failed (retries spent), retried, dropped",
            ["action", "outcome"],
            registry=r,
        )

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.stage_seconds.labels(stage).observe(seconds)

    def count_engine_items(self, model: str, backend: str, items: int) -> None:
        self.engine_items.labels(model, backend).inc(items)

    def count_action(self, action: str, outcome: str) -> None:
        """One trigger outcome; ``livecell.actions`` calls it from its worker threads."""
        self.actions.labels(action, outcome).inc()


def serve_metrics(metrics: Metrics, address: str) -> Any:
    """Serve ``/metrics`` on ``host:port``; return the server (``.shutdown()`` stops it)."""
    host, port = split_address(address)
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server
