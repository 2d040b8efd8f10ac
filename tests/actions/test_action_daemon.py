"""Triggers in a real ``livecell run``: an ``[[actions]]`` HTTP entry receives the
daemon's events (``frame``, since ``analysis.mode = "none"`` derives no deaths), the
outcomes show in ``/metrics``, and a ``replay`` of the same frames fires nothing."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

from action_peers import HttpPeer, wait_until
from daemons import Daemon, read_events
from microscope import pixels_for, write_tiff


def test_run_posts_frame_events_and_replay_does_not(
    make_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    incoming = tmp_path / "incoming"
    (incoming / "Pos0").mkdir(parents=True)
    with HttpPeer().serving() as peer:
        daemon = make_daemon(source={"path": "incoming", "settle_s": 0.2})
        with daemon.config.open("a") as config:
            config.write(f'\n[[actions]]\nkind = "frame"\nhttp = "{peer.url}"\ntimeout_s = 2\n')
        daemon.start()
        daemon.wait_started()
        for t in range(3):
            write_tiff(incoming / "Pos0" / f"t{t:05d}.tif", pixels_for("Pos0", t))
        frames = daemon.wait_events("frame", 3)
        assert wait_until(lambda: len(peer.received) >= 3), daemon.log_text()[-3000:]
        url = f"http://127.0.0.1:{daemon.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            metrics = response.read().decode()
        assert daemon.stop() == 0
        assert len(frames) == 3
        assert sorted(e["event_id"] for e in peer.received) == sorted(e["event_id"] for e in frames)
        assert peer.received[0] == next(e for e in frames if e["t"] == peer.received[0]["t"])
        assert 'livecell_actions_total{action="0:http",outcome="sent"} 3.0' in metrics

        replayed = tmp_path / "replayed.jsonl"
        done = subprocess.run(
            [
                *(sys.executable, "-m", "livecell", "replay", str(incoming)),
                *("-c", str(daemon.config), "--events", str(replayed)),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert len([e for e in read_events(replayed) if e["kind"] == "frame"]) == 3
        assert len(peer.times) == 3  # no POST from the replay
