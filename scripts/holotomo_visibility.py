"""How much of each death state the holotomography simulator makes visible, frame by frame.

The simulator labels a dying cell with its pathway from the onset of the death
programme; its appearance then changes smoothly from the live look. Frames early in
that change look like a live cell to any single-frame classifier, so they bound the
recall a per-patch model can reach. This prints, per pathway, the share of dying
cell-frames whose size, height and cytoplasm refractive index are all within a
relative threshold of the same cell's live look.

It also asks how separable live_control and live_treated are from each live cell's
own visible traits (footprint radius, heights, cytoplasm RI, texture, droplet count,
outline wobble, all after the treatment's effect): a logistic regression on those
true values, cross-validated, is an upper bound for a model that sees the whole cell.
Together: the balanced-accuracy ceiling over the five patch states for a single-frame
model that sees whole cells (patches that show only part of a cell do worse).

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


def visible_traits(cell: object) -> list[float]:
    """The live look's traits an image shows, as logs: what tells control from treated."""
    c = cell
    look = look_at(c, 0.0)  # type: ignore[arg-type]
    traits = [
        c.radius_px * look.radius_scale,  # type: ignore[attr-defined]
        c.top_height_um * look.height_scale,  # type: ignore[attr-defined]
        c.edge_height_um * look.height_scale,  # type: ignore[attr-defined]
        look.cytoplasm_delta_ri,
        c.texture_amplitude * look.texture_scale,  # type: ignore[attr-defined]
        len(c.droplets) * look.droplet_share + 1.0,  # type: ignore[attr-defined]
        float(np.abs(c.harmonic_amp).sum()) * look.irregularity + 1e-6,  # type: ignore[attr-defined]
    ]
    return [float(np.log(v)) for v in traits]


def control_vs_treated_ceiling(simulators: list[HolotomoSimulator]) -> tuple[int, float]:
    """Live cells, and the cross-validated balanced accuracy on their true traits."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cells = [c for sim in simulators for f in sim._fields for c in f.cells if not c.pathway]
    x = np.array([visible_traits(c) for c in cells])
    y = np.array([c.treated for c in cells])
    model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced"))
    scores = cross_val_score(model, x, y, cv=5, scoring="balanced_accuracy")
    return len(cells), float(scores.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--threshold", type=float, default=0.02)
    args = parser.parse_args()
    params = dataclasses.replace(HolotomoParams(), size_px=1024)
    changes: dict[str, list[float]] = {}
    simulators = [HolotomoSimulator(params, seed=seed) for seed in range(args.seeds)]
    for simulator in simulators:
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
    n, live_ceiling = control_vs_treated_ceiling(simulators)
    recalls = [live_ceiling, live_ceiling]  # live_control and live_treated
    for pathway, values in sorted(changes.items()):
        invisible = float((np.asarray(values) < args.threshold).mean())
        recalls.append(1.0 - invisible)
        print(f"{pathway:<14}{len(values):>12}{invisible:>11.3f}")
    print(f"live_control vs live_treated, true traits of {n} live cells: {live_ceiling:.3f}")
    print(f"balanced-accuracy ceiling over the 5 states, whole cells: {np.mean(recalls):.3f}")


if __name__ == "__main__":
    main()
