"""Re-image a well at a faster rate when livecell reports a death there (pymmcore-plus).

livecell sends each matching event to this script's ZeroMQ REP socket, as JSON
(SPEC section 4), and waits for the reply. Give the daemon an action such as::

    [[actions]]
    kind = "death"
    min_confidence = 0.9
    zmq = "tcp://127.0.0.1:5570"

and start this script beside the microscope::

    python examples/pymmcore_trigger.py --endpoint tcp://127.0.0.1:5570 --dry-run

On a ``death`` in well W (id ``r{row:03d}c{col:03d}``) it decides once per
(position, well) to re-image W every ``--interval-s`` seconds for ``--frames``
frames, replies at once (``{"ok": true, "decision": {...}}``; livecell waits only
for this reply, never for the acquisition) and prints the decision as one JSON line.
Any other event is answered ``{"ok": true, "ignored": "..."}``.

Where W is on the stage: wells lie on a square lattice of ``--pitch-um``, well
``r000c000`` of every position at ``--origin-um X Y`` (stage coordinates of its
centre, in µm). Adapt ``well_to_stage`` to your chip and position list.

``--dry-run`` only prints the decision; it needs pyzmq alone. Without it the
decision drives Micro-Manager through pymmcore-plus (``pip install pymmcore-plus``),
using its queue-driven, event-driven acquisition:

- ``core = CMMCorePlus(); core.loadSystemConfiguration(CFG)`` (no argument: the
  demo configuration);
- ``core.run_mda(iter(queue.get, STOP))`` starts an acquisition, in its own thread,
  that runs every ``useq.MDAEvent`` put into ``queue`` until ``STOP``;
- the burst for W is a ``useq.MDASequence(stage_positions=[{"x": x, "y": y,
  "name": ...}], channels=[...], time_plan={"interval": s, "loops": n})``; a
  scheduler thread puts its events into the queue, each at its ``min_start_time``
  after the decision, so the running acquisition images W at the faster rate
  between whatever else is queued (a slow main plan can be fed the same way).

This branch is not run in livecell's tests (pymmcore-plus is not a livecell
dependency); the dry run is.
"""

from __future__ import annotations

import argparse
import json
import queue
import re
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import zmq

WELL = re.compile(r"r(?P<row>\d+)c(?P<col>\d+)")


@dataclass(frozen=True)
class Decision:
    action: str
    event_id: str
    acquisition: str
    position: str
    well: str
    pathway: str
    confidence: float
    x_um: float
    y_um: float
    interval_s: float
    frames: int


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", default="tcp://127.0.0.1:5570", help="REP socket to bind")
    parser.add_argument("--dry-run", action="store_true", help="print decisions, image nothing")
    parser.add_argument("--interval-s", type=float, default=30.0, help="the faster rate")
    parser.add_argument("--frames", type=int, default=20, help="frames in the faster burst")
    parser.add_argument("--pitch-um", type=float, default=250.0, help="well lattice pitch")
    parser.add_argument(
        "--origin-um",
        type=float,
        nargs=2,
        default=(0.0, 0.0),
        metavar=("X", "Y"),
        help="stage position of the centre of well r000c000",
    )
    parser.add_argument("--channels", nargs="*", default=["DAPI"], help="channel configs")
    parser.add_argument("--mm-config", default=None, help="Micro-Manager configuration file")
    parser.add_argument("--count", type=int, default=0, help="exit after N events (0: never)")
    return parser


def well_to_stage(well: str, pitch_um: float, origin_um: Sequence[float]) -> tuple[float, float]:
    """Stage (x, y) in µm of the centre of well ``r{row}c{col}``."""
    match = WELL.fullmatch(well)
    if match is None:
        raise ValueError(f"not a well id: {well!r}")
    row, col = int(match["row"]), int(match["col"])
    return origin_um[0] + col * pitch_um, origin_um[1] + row * pitch_um


def decide(
    event: dict[str, Any], args: argparse.Namespace, done: set[tuple[str, str]]
) -> Decision | str:
    """A ``Decision`` for a death in a well not yet re-imaged, else why it is ignored."""
    if event.get("kind") != "death":
        return f"kind {event.get('kind')!r} is not death"
    well, position = event.get("well"), str(event.get("position"))
    if not isinstance(well, str):
        return "no well (patch mode): nothing to re-image"
    if (position, well) in done:
        return f"{position}/{well} is already re-imaged"
    x_um, y_um = well_to_stage(well, args.pitch_um, args.origin_um)
    done.add((position, well))
    return Decision(
        action="reimage",
        event_id=str(event.get("event_id")),
        acquisition=str(event.get("acquisition")),
        position=position,
        well=well,
        pathway=str(event.get("pathway")),
        confidence=float(event.get("confidence", float("nan"))),
        x_um=x_um,
        y_um=y_um,
        interval_s=args.interval_s,
        frames=args.frames,
    )


class Microscope:
    """pymmcore-plus, driven by a queue: bursts are scheduled into the running MDA."""

    STOP = object()

    def __init__(self, config: str | None, channels: Sequence[str]) -> None:
        from pymmcore_plus import CMMCorePlus  # only here: the dry run needs no pymmcore

        self.core = CMMCorePlus()
        if config is None:
            self.core.loadSystemConfiguration()  # the demo configuration
        else:
            self.core.loadSystemConfiguration(config)
        self.channels = list(channels)
        self.queue: queue.Queue[Any] = queue.Queue()
        self.thread = self.core.run_mda(iter(self.queue.get, self.STOP))

    def reimage(self, decision: Decision) -> None:
        import useq

        burst = useq.MDASequence(
            stage_positions=[
                {
                    "x": decision.x_um,
                    "y": decision.y_um,
                    "name": f"{decision.position}/{decision.well}",
                }
            ],
            channels=self.channels,
            time_plan={"interval": decision.interval_s, "loops": decision.frames},
            metadata={"livecell_event_id": decision.event_id},
        )
        threading.Thread(target=self._schedule, args=(list(burst),), daemon=True).start()

    def _schedule(self, events: list[Any]) -> None:
        started = time.monotonic()
        for event in events:
            wait = (event.min_start_time or 0.0) - (time.monotonic() - started)
            if wait > 0:
                time.sleep(wait)
            self.queue.put(event)

    def close(self) -> None:
        self.queue.put(self.STOP)
        self.thread.join()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    microscope = None if args.dry_run else Microscope(args.mm_config, args.channels)
    context = zmq.Context()
    socket = context.socket(zmq.REP)
    socket.setsockopt(zmq.LINGER, 0)
    socket.bind(args.endpoint)
    print(json.dumps({"listening": args.endpoint, "dry_run": args.dry_run}), flush=True)
    done: set[tuple[str, str]] = set()
    handled = 0
    try:
        while args.count == 0 or handled < args.count:
            message = socket.recv()
            handled += 1
            try:
                event = json.loads(message)
                outcome = decide(event, args, done)
            except ValueError as exc:  # bad JSON or a bad well id: say so, keep serving
                socket.send_string(json.dumps({"ok": False, "error": str(exc)}))
                continue
            if isinstance(outcome, str):
                socket.send_string(json.dumps({"ok": True, "ignored": outcome}))
                continue
            socket.send_string(json.dumps({"ok": True, "decision": asdict(outcome)}))
            print(json.dumps({"decision": asdict(outcome)}), flush=True)
            if microscope is not None:
                microscope.reimage(outcome)
    except KeyboardInterrupt:
        pass
    finally:
        socket.close()
        context.term()
        if microscope is not None:
            microscope.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
