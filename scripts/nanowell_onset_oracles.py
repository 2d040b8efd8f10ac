#!/usr/bin/env python
"""How well can a death onset be placed from what a cell shows? Two oracles on the truth.

The nanowell simulator starts each death slowly (a smoothstep from the onset frame: the
first frames after onset differ from the live look by a few percent), so the onset must
be read back from a change that becomes clear only later. This script tries the two
obvious hand-made estimators on *ground truth* inputs, with hindsight up to
``--horizon`` frames past the true onset (the daemon calls a death about 7-12 frames
after it), and prints the share of deaths whose estimated onset is within 2 frames:

- **features**: per cell and frame, under its ground-truth mask (``TRA/``), the area,
  the mean, spread, 10th and 90th percentile of the pixels and the mean gradient
  magnitude; each feature scaled by its own frame-to-frame noise, and the onset chosen
  by least squares over a smoothstep ramp ``a + b * s((t - onset + 1) / span)`` for
  every onset and span (the simulator's own time course, so the best case for a fit);
- **motion**: a dying cell stops crawling; the onset is the change point where the
  ground-truth centroid stood still (:mod:`livecell.tracking.arrest`,
  the daemon's rule, on the centroids with the stage drift taken out, as the nanowell
  stage measures it on the walls, plus 0.2 px of noise), searched from a first guess
  up to 3 frames off the truth, as the death model's onset would be.

Both use the truth, so they are upper bounds for these estimators. The daemon
(death model, then the arrest rule on its own tracks) places the detected onsets of
seed 91 within 2 frames as docs/nanowell.md reports.

    livecell simulate sim91 --kind nanowell --frames 72 --interval 0 --seed 91
    python scripts/nanowell_onset_oracles.py sim91 [--horizon 10]
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import numpy.typing as npt
import tifffile

from livecell.analysis.wells import WellLattice
from livecell.tracking.arrest import ArrestRule, arrest_frame

FloatArray = npt.NDArray[np.float64]
SPANS = (3, 4, 6, 8, 12, 16, 24, 32)


def smoothstep(x: FloatArray) -> FloatArray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def cell_features(image: FloatArray, mask: npt.NDArray[np.bool_]) -> tuple[float, ...]:
    """Area, mean, spread, 10th / 90th percentile and mean gradient under one cell's mask."""
    ys, xs = np.nonzero(mask)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    gy, gx = np.gradient(image[box])
    values = image[mask]
    return (
        float(np.sqrt(mask.sum())),
        float(values.mean()),
        float(values.std()),
        float(np.percentile(values, 10)),
        float(np.percentile(values, 90)),
        float(np.hypot(gx, gy)[mask[box]].mean()),
    )


def fit_onset(ts: npt.NDArray[np.int64], features: FloatArray) -> int:
    """The onset of the smoothstep ramp that best explains every (noise-scaled) feature."""
    noise = np.median(np.abs(np.diff(features, axis=0)), axis=0) * 1.48 / np.sqrt(2) + 1e-9
    z = features / noise
    best = (np.inf, int(ts[-1]))
    for onset in range(int(ts[0]) + 3, int(ts[-1]) - 1):
        for span in SPANS:
            ramp = smoothstep((ts - onset + 1) / span)
            design = np.stack([np.ones_like(ramp), ramp], axis=1)
            coef = np.linalg.lstsq(design, z, rcond=None)[0]
            residual = float(((z - design @ coef) ** 2).sum())
            if residual < best[0]:
                best = (residual, onset)
    return best[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("acquisition", type=Path, help="a `livecell simulate` output folder")
    parser.add_argument("--horizon", type=int, default=10, help="frames past the true onset")
    parser.add_argument("--seed", type=int, default=0, help="for the centroid noise")
    args = parser.parse_args()
    truth = args.acquisition / "ground_truth"
    deaths = list(csv.DictReader((truth / "deaths.csv").open()))
    rng = np.random.default_rng(args.seed)

    centroids: dict[tuple[str, int], dict[int, tuple[float, float]]] = defaultdict(dict)
    for row in csv.DictReader((truth / "tracks.csv").open()):
        key = (row["position"], int(row["track"]))
        centroids[key][int(row["t"])] = (float(row["x"]), float(row["y"]))

    features: dict[tuple[str, int], dict[int, tuple[float, ...]]] = defaultdict(dict)
    drift: dict[tuple[str, int], tuple[float, float]] = {}
    for position in sorted({d["position"] for d in deaths}):
        dying = {int(d["track"]) for d in deaths if d["position"] == position}
        frames = sorted((args.acquisition / "frames" / position).glob("t*.tif"))
        lattice = WellLattice()
        for t, path in enumerate(frames):
            image = tifffile.imread(path).astype(np.float64)
            lattice.update(image, t)
            drift[(position, t)] = lattice.offset_px
            labels = tifffile.imread(truth / position / "TRA" / f"man_track{t:03d}.tif")
            for track in dying:
                mask = labels == track
                if mask.sum() >= 20:
                    features[(position, track)][t] = cell_features(image, mask)

    errors: dict[str, list[int]] = defaultdict(list)
    for death in deaths:
        key, onset = (death["position"], int(death["track"])), int(death["onset_t"])
        seen = {t: f for t, f in features[key].items() if t <= onset + args.horizon}
        if len(seen) >= 8:
            ts = np.array(sorted(seen), dtype=np.int64)
            fitted = fit_onset(ts, np.array([seen[t] for t in ts], dtype=np.float64))
            errors["features"].append(fitted - onset)
        xy = {
            t: (
                x - drift[(key[0], t)][0] + rng.normal(0, 0.2),
                y - drift[(key[0], t)][1] + rng.normal(0, 0.2),
            )
            for t, (x, y) in centroids[key].items()
        }
        steps = {
            t: float(np.hypot(xy[t][0] - xy[t - 1][0], xy[t][1] - xy[t - 1][1]))
            for t in xy
            if t - 1 in xy
        }
        guess = onset + int(rng.integers(-3, 4))
        stopped = arrest_frame(steps, guess, onset + args.horizon, ArrestRule())
        errors["motion"].append((guess if stopped is None else stopped) - onset)

    print(f"{len(deaths)} deaths; hindsight {args.horizon} frames past the true onset")
    print("  oracle     deaths  within 2 frames  median error")
    for name, errs in errors.items():
        e = np.array(errs)
        print(f"  {name:9s}  {len(e):6d}  {np.mean(np.abs(e) <= 2):15.0%}  {np.median(e):+12.1f}")


if __name__ == "__main__":
    main()
