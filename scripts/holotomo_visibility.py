"""How much of each death state the holotomography simulator makes visible, frame by frame.

The simulator labels a dying cell with its pathway from the onset of the death
programme; its appearance then changes smoothly from the live look. Frames early in
that change look like a live cell to any single-frame classifier, so they bound the
recall a per-patch model can reach. This prints, per pathway, the share of dying
cell-frames whose size, height and cytoplasm refractive index are all within a
relative threshold of the same cell's live look, and the balanced-accuracy ceiling
over the five patch states that follows if those frames are called live.

    python scripts/holotomo_visibility.py [--seeds 20] [--threshold 0.02]
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from livecell.simulation.holotomo import HolotomoSimulator
from livecell.simulation.holotomo_cells import look_at
from livecell.simulation.holotomo_params import HolotomoParams

FRAMES = 24


def relative_change(cell: object, minutes: float) -> float:
    """Largest relative change of radius, height and cytoplasm RI against the live look."""
    look = look_at(cell, minutes)  # type: ignore[arg-type]
    live = look_at(cell, -1e9)  # type: ignore[arg-type]
    return max(
        abs(look.radius_scale / live.radius_scale - 1.0),
        abs(look.height_scale / live.height_scale - 1.0),
        abs(look.cytoplasm_delta_ri / live.cytoplasm_delta_ri - 1.0),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--threshold", type=float, default=0.02)
    args = parser.parse_args()
    params = dataclasses.replace(HolotomoParams(), size_px=1024)
    changes: dict[str, list[float]] = {}
    for seed in range(args.seeds):
        simulator = HolotomoSimulator(params, seed=seed)
        for field in simulator._fields:
            for cell in field.cells:
                if not cell.pathway:
                    continue
                for t in range(FRAMES):
                    minutes = t * params.frame_interval_min
                    if look_at(cell, minutes).state == cell.pathway:
                        changes.setdefault(cell.pathway, []).append(relative_change(cell, minutes))
    print(f"{args.seeds} seeds x {FRAMES} frames, threshold {args.threshold:.0%}")
    print(f"{'pathway':<14}{'cell-frames':>12}{'invisible':>11}")
    recalls = [1.0, 1.0]  # live_control and live_treated, if perfectly separated
    for pathway, values in sorted(changes.items()):
        invisible = float((np.asarray(values) < args.threshold).mean())
        recalls.append(1.0 - invisible)
        print(f"{pathway:<14}{len(values):>12}{invisible:>11.3f}")
    print(f"balanced-accuracy ceiling over 5 states: {np.mean(recalls):.3f}")


if __name__ == "__main__":
    main()
