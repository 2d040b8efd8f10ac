"""A live run for the benchmarks: the daemon in this process, a thread playing the microscope.

``run_live`` starts :func:`livecell.daemon.run_daemon` on ``config`` (a watch source),
waits for its ``READY=1`` over a real notify socket (systemd's protocol: models loaded
and warmed up), copies the staged frame files into the watched folder one every
``interval_s``, waits until every frame has its ``frame`` event, and stops it. The
latencies are the pipeline's own (frame complete on disk -> its last event written).
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livecell.config import Config, config_from_dict


@dataclass(frozen=True, slots=True)
class LiveRun:
    latencies_s: list[float]
    cpu_s: float  # this process's CPU time from the first frame to the last frame's events
    before_stop: Any = None  # what the ``before_stop`` callback returned


def live_config(work: Path, sections: dict[str, Any]) -> Config:
    """A daemon config for a live run in ``work``: watching ``work/microscope``, its events,
    tracks and state beside it, metrics off unless ``sections`` say otherwise."""
    return config_from_dict(
        {
            "state_dir": str(work / "state"),
            "source": {"kind": "watch", "path": str(work / "microscope")},
            "sinks": {"events": str(work / "events.jsonl"), "tracks": str(work / "tracks.csv")},
            "metrics": {"address": ""},
            **sections,
        },
        base_dir=work,
    )


def run_live(
    config: Config,
    staged: Sequence[Path],
    interval_s: float,
    *,
    timeout_s: float = 300.0,
    after_ready: Callable[[], None] | None = None,
    before_stop: Callable[[], Any] | None = None,
) -> LiveRun:
    """Play ``staged`` (``<position>/<file>``) into ``config.source.path`` while the daemon runs.

    ``after_ready`` runs once the daemon is ready, before the first frame.
    """
    from livecell.daemon import run_daemon

    watched = config.source.path
    if watched is None:
        raise ValueError("run_live needs a watch source with a path")
    for path in staged:  # before the daemon starts, so inotify watches every folder
        (watched / path.parent.name).mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    result: dict[str, list[float]] = {}
    notify_path = config.state_dir.parent / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))  # open until the daemon ends: it writes STATUS to the end
        notify.settimeout(timeout_s)

        def daemon() -> None:
            environ = {"NOTIFY_SOCKET": str(notify_path)}
            result["latencies"] = run_daemon(config, stop, environ=environ).frame_latencies_s

        thread = threading.Thread(target=daemon, name="bench-live")
        thread.start()
        try:  # an error or Ctrl-C here must still stop the daemon, or the process never ends
            while b"READY=1" not in notify.recv(4096).split(b"\n"):
                pass
            threading.Thread(target=_drain, args=(notify,), daemon=True).start()
            if after_ready is not None:
                after_ready()
            cpu_started = time.process_time()
            for path in staged:
                shutil.copyfile(path, watched / path.parent.name / path.name)
                time.sleep(interval_s)
            _wait_for_frames(config.sinks.events, len(staged), thread, timeout_s)
            cpu_s = time.process_time() - cpu_started
            extra = before_stop() if before_stop is not None else None
        finally:
            stop.set()
            thread.join()
    latencies = result.get("latencies", [])
    if len(latencies) != len(staged):
        raise RuntimeError(f"{len(latencies)} frame latencies for {len(staged)} frames")
    return LiveRun(latencies, cpu_s, extra)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _drain(notify: socket.socket) -> None:
    """Read (and drop) the daemon's WATCHDOG and STATUS datagrams, as systemd would."""
    try:
        while notify.recv(4096):
            pass
    except OSError:  # closed, or quiet for the whole timeout
        return


def _wait_for_frames(events: Path, frames: int, thread: threading.Thread, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while thread.is_alive() and time.monotonic() < deadline:
        if events.exists() and _frame_events(events) >= frames:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{events}: not all {frames} frames were analysed in time")


def _frame_events(events: Path) -> int:
    """Frame events among the whole lines (a last one without its newline is being written)."""
    with events.open(encoding="utf-8") as f:
        whole = [line for line in f if line.endswith("\n")]
    return sum(1 for line in whole if json.loads(line).get("kind") == "frame")
