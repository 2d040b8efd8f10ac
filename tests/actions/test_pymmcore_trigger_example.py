"""``examples/pymmcore_trigger.py --dry-run`` as a subprocess, fed over a real ZMQ REQ
socket as livecell's action would: a frame is ignored, a death gets its decision."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import zmq
from action_peers import death_event, frame_event
from daemons import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pymmcore_trigger.py"


def request(socket: zmq.Socket[Any], event: dict[str, Any]) -> dict[str, Any]:
    socket.send(json.dumps(event).encode())
    assert socket.poll(10_000, zmq.POLLIN), "the example did not reply"
    reply: dict[str, Any] = json.loads(socket.recv())
    return reply


def test_dry_run_decides_to_reimage_the_well() -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    command = [sys.executable, str(EXAMPLE), "--dry-run", "--endpoint", endpoint]
    command += ["--count", "2", "--interval-s", "20", "--pitch-um", "300"]
    command += ["--origin-um", "1000", "-500"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline()) == {"listening": endpoint, "dry_run": True}
        context: zmq.Context[Any] = zmq.Context()
        socket = context.socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(endpoint)
        try:
            ignored = request(socket, frame_event())
            reply = request(socket, death_event(well="r001c002", event_id="e" * 32))
        finally:
            socket.close()
            context.term()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert ignored == {"ok": True, "ignored": "kind 'frame' is not death"}
    printed = json.loads(out.strip().splitlines()[-1])["decision"]
    assert reply == {"ok": True, "decision": printed}
    assert printed["action"] == "reimage"
    assert (printed["position"], printed["well"], printed["event_id"]) == (
        "Pos0",
        "r001c002",
        "e" * 32,
    )
    assert (printed["x_um"], printed["y_um"]) == (1000 + 2 * 300, -500 + 1 * 300)
    assert (printed["interval_s"], printed["frames"]) == (20.0, 20)
