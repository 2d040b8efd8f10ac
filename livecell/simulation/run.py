"""Running a simulation: step the simulator, write frames and truth, pace in real time."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from livecell.simulation._protocol import Simulator
from livecell.simulation.output import FileOutput, FrameOutput, Pacer, ZmqOutput
from livecell.simulation.preview import write_preview
from livecell.simulation.scene import SimFrame, SimSummary
from livecell.simulation.truth import GroundTruthWriter


@dataclass(frozen=True)
class RunOptions:
    frames: int
    interval_s: float = 0.0
    zmq_endpoint: str | None = None
    preview: bool = False
    acquisition: str | None = None
    progress: bool = True


def run_simulation(simulator: Simulator, out: Path, options: RunOptions) -> SimSummary:
    """Write ``options.frames`` time points into ``out``; return the final summary."""
    acquisition = options.acquisition or out.resolve().name
    output: FrameOutput = (
        ZmqOutput(options.zmq_endpoint, acquisition=acquisition)
        if options.zmq_endpoint
        else FileOutput(out, acquisition=acquisition)
    )
    truth = GroundTruthWriter(out, with_patches=simulator.kind == "holotomo")
    preview_at = _preview_times(options.frames) if options.preview else set()
    kept: list[SimFrame] = []
    pacer = Pacer(options.interval_s)
    bar = tqdm(
        range(options.frames),
        desc=f"simulate {simulator.kind}",
        unit="frame",
        file=sys.stderr,
        disable=not (options.progress and sys.stderr.isatty()),
    )
    try:
        for t in bar:
            pacer.wait_for(t)
            for frame in simulator.step():
                truth.add(frame)
                output.write(frame)
                if t in preview_at and frame.position == simulator.positions[0]:
                    kept.append(frame)
    finally:
        bar.close()
        output.close()
    summary = simulator.summary()
    truth.close(summary)
    for frame in kept:
        write_preview(out / "preview" / f"{frame.position}_t{frame.t:05d}.png", frame, summary)
    return summary


def _preview_times(frames: int) -> set[int]:
    return {0, frames // 2, frames - 1} if frames > 0 else set()
