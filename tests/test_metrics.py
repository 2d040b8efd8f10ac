"""Acceptance 5: `/metrics` shows the SPEC section 6 metrics, counted as in the events file.

A real ``livecell run`` gets a mix of good frames, malformed input and
duplicates (over ZeroMQ, and as files); the Prometheus text it serves is
parsed with prometheus_client's own parser and compared with the events file.
"""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
from daemons import Daemon, free_port, wait_for
from microscope import PushSender, frame_message, pixels_for, write_tiff
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

# SPEC section 6: exposed name -> (type, labels)
SPEC_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "livecell_frames_total": ("counter", ("source",)),
    "livecell_frames_rejected_total": ("counter", ("reason",)),
    "livecell_events_total": ("counter", ("kind",)),
    "livecell_frame_latency_seconds": ("histogram", ()),
    "livecell_stage_seconds": ("histogram", ("stage",)),
    "livecell_queue_depth": ("gauge", ()),
    "livecell_engine_items_total": ("counter", ("model", "backend")),
}


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        return str(response.read().decode())


def samples(text: str) -> dict[str, list[Sample]]:
    """Samples by sample name (``livecell_frames_total``, ``..._bucket``, ...)."""
    by_name: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            by_name.setdefault(sample.name, []).append(sample)
    return by_name


def by_label(found: dict[str, list[Sample]], name: str, label: str) -> dict[str, float]:
    return {s.labels[label]: s.value for s in found.get(name, []) if s.value}


def expected_counts(events: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """What the counters must say, from the events file alone."""
    return {
        "frames": dict(Counter(e["source"] for e in events if e["kind"] == "frame")),
        "rejected": dict(Counter(e["reason"] for e in events if e["kind"] == "rejected")),
        "events": dict(Counter(e["kind"] for e in events)),
    }


def scraped_counts(found: dict[str, list[Sample]]) -> dict[str, dict[str, float]]:
    return {
        "frames": by_label(found, "livecell_frames_total", "source"),
        "rejected": by_label(found, "livecell_frames_rejected_total", "reason"),
        "events": by_label(found, "livecell_events_total", "kind"),
    }


def check_metrics_match_events(daemon: Daemon) -> None:
    events = daemon.events()
    want = expected_counts(events)
    assert wait_for(lambda: scraped_counts(samples(scrape(daemon.metrics_port))) == want), (
        f"metrics {scraped_counts(samples(scrape(daemon.metrics_port)))} != events file {want}"
    )
    text = scrape(daemon.metrics_port)
    check_spec_metrics_exposed(text)
    found = samples(text)

    frames = sum(want["frames"].values())
    (latency_count,) = found["livecell_frame_latency_seconds_count"]
    assert latency_count.value == frames
    buckets = [s.value for s in found["livecell_frame_latency_seconds_bucket"]]
    assert buckets == sorted(buckets)
    assert buckets[-1] == frames
    (latency_sum,) = found["livecell_frame_latency_seconds_sum"]
    assert latency_sum.value > 0

    stage_counts = {
        s.labels["stage"]: s.value for s in found["livecell_stage_seconds_count"] if s.value
    }
    assert stage_counts, "no stage was timed"
    assert stage_counts.get("analysis") == frames
    (depth,) = found["livecell_queue_depth"]
    assert depth.value == 0


def check_spec_metrics_exposed(text: str) -> None:
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, (kind, labels) in SPEC_METRICS.items():
        assert f"# TYPE {name} {kind}" in text, f"{name} ({kind}) is not exposed"
        family = families[name.removesuffix("_total")]
        assert family.type == kind
        for sample in family.samples:
            if sample.name.endswith(("_created", "_bucket")):
                continue
            assert set(sample.labels) == set(labels), (name, sample)


def test_zmq_metrics_match_events(make_daemon: Callable[..., Daemon]) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    daemon = make_daemon(source={"kind": "zmq", "endpoint": endpoint})
    daemon.start()
    daemon.wait_started()
    text = scrape(daemon.metrics_port)
    check_spec_metrics_exposed(text)

    good = [frame_message(p, t) for t in range(10) for p in ("Pos0", "Pos1", "Pos2")]
    header = json.loads(good[0][0])
    bad: list[list[bytes]] = [
        good[0][:1],  # one frame
        [*good[1], b"extra"],  # three frames
        [b"{not json", good[0][1]],
        [json.dumps({k: v for k, v in header.items() if k != "t"}).encode(), good[0][1]],
        frame_message("Pos9", 0, dtype="int64"),
        [good[2][0], good[2][1][:-2]],  # buffer one pixel short
        [json.dumps({**header, "t": 99, "shape": [100_000, 100_000]}).encode(), b"\0" * 8],
    ]
    duplicates = good[:5]
    with PushSender(endpoint) as sender:
        sender.send_all(good[:15])
        sender.send_all(bad)
        sender.send_all(good[15:])
        sender.send_all(duplicates)
    total = len(good) + len(bad) + len(duplicates)
    assert wait_for(lambda: len(daemon.events()) >= total), daemon.log_text()[-3000:]

    events = daemon.events()
    reasons = Counter(e["reason"] for e in events if e["kind"] == "rejected")
    assert reasons["duplicate"] == len(duplicates)
    assert sum(reasons.values()) == len(bad) + len(duplicates)
    assert len(daemon.events("frame")) == len(good)
    check_metrics_match_events(daemon)
    assert daemon.stop() == 0


def test_watch_metrics_match_events(make_daemon: Callable[..., Daemon]) -> None:
    daemon = make_daemon(source={"path": "incoming", "settle_s": 0.2})
    incoming = daemon.workdir / "incoming"
    for t in range(4):
        write_tiff(incoming / "Pos0" / f"img_{t:03d}.tif", pixels_for("Pos0", t))
    (incoming / "Pos1").mkdir(parents=True)
    (incoming / "Pos1" / "img_000.tif").write_bytes(b"")
    (incoming / "Pos1" / "img_001.tif").write_text("this is not a TIFF\n")
    write_tiff(incoming / "Pos1" / "img_002.tif", np.full((8, 8), np.nan, dtype=np.float32))
    write_tiff(incoming / "Pos1" / "img_003.tif", np.zeros((2, 8, 8), dtype=np.uint16))  # not YX
    daemon.start()
    daemon.wait_started()
    assert wait_for(lambda: len(daemon.events()) >= 8), daemon.log_text()[-3000:]

    assert len(daemon.events("frame")) == 4
    assert len(daemon.events("rejected")) == 4
    check_metrics_match_events(daemon)
    quarantined = sorted(p.name for p in (daemon.state_dir / "quarantine").glob("*.tif"))
    assert quarantined == [f"img_{t:03d}.tif" for t in range(4)]
    assert daemon.stop() == 0
