"""Fit the contact model (livecell/tracking/contact_score.py) on simulated acquisitions.

For every frame of each acquisition: the well lattice, the bundled U-Net's labels and
foreground, each label pair's four measurements (``candidate_pairs``), and whether
the two simulated cells the labels cover most were in contact then (``contacts.csv``).
Then an L2-regularised logistic regression (C = 1, intercept free, as scikit-learn's
default) by L-BFGS. Prints the weights for ``BUNDLED_CONTACT_MODEL``.

The bundled weights came from:

    for s in 131 132 133 134; do
        livecell simulate /tmp/nw$s --kind nanowell --frames 72 --interval 0 --seed $s
    done
    python scripts/fit_contact_model.py /tmp/nw131 /tmp/nw132 /tmp/nw133 /tmp/nw134

(about 2 minutes per acquisition on 2 cores). Seeds 131-134 are used for nothing else.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import tifffile
from scipy import optimize

from livecell.analysis.wells import WellLattice
from livecell.segmentation import UNetSegmenter
from livecell.tracking.contact_score import MEASUREMENTS, candidate_pairs


def truth_contacts(acquisition: Path) -> dict[tuple[str, int], set[tuple[int, int]]]:
    """(well, t) -> pairs of simulated tracks in contact."""
    out: dict[tuple[str, int], set[tuple[int, int]]] = defaultdict(set)
    with open(acquisition / "ground_truth" / "contacts.csv", newline="") as f:
        for row in csv.DictReader(f):
            a, b = sorted((int(row["track_a"]), int(row["track_b"])))
            for t in range(int(row["start_t"]), int(row["end_t"]) + 1):
                out[(row["well"], t)].add((a, b))
    return out


def covering_track(truth_labels: np.ndarray, mask: np.ndarray) -> int:
    """The simulated track that covers most of ``mask`` (-1: none)."""
    values, counts = np.unique(truth_labels[mask], return_counts=True)
    counts = np.where(values == 0, 0, counts)
    return int(values[np.argmax(counts)]) if counts.max() > 0 else -1


def examples(acquisition: Path, segmenter: UNetSegmenter) -> tuple[np.ndarray, np.ndarray]:
    """Measurements ``[N, 4]`` and in-contact flags ``[N]`` of every label pair of one
    acquisition's single position."""
    truth = truth_contacts(acquisition)
    lattice = WellLattice()
    rows: list[np.ndarray] = []
    flags: list[bool] = []
    frames = sorted((acquisition / "frames").glob("*/t*.ome.tif"))
    for path in frames:
        t = int(path.name[1:6])
        image = tifffile.imread(path).astype(np.float32)
        truth_labels = tifffile.imread(
            acquisition / "ground_truth" / path.parent.name / "TRA" / f"man_track{t:03d}.tif"
        )
        wells = lattice.update(image, t)
        crops = [image[w.y0 : w.y1, w.x0 : w.x1] for w in wells]
        for well, (labels, foreground) in zip(
            wells, segmenter.segment_with_foreground(crops), strict=True
        ):
            found = candidate_pairs(labels, foreground)
            cover = truth_labels[well.y0 : well.y1, well.x0 : well.x1]
            for (a, b), row in zip(found.pairs.tolist(), found.measurements, strict=True):
                ta, tb = sorted(covering_track(cover, labels == v) for v in (a, b))
                if ta < 0 or ta == tb:
                    continue  # a fragment, or a label over no simulated cell: no truth to learn
                rows.append(row)
                flags.append((ta, tb) in truth.get((well.well, t), set()))
        print(f"{acquisition.name} t={t}: {len(flags)} pairs", flush=True)
    return np.asarray(rows), np.asarray(flags, dtype=float)


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float = 1.0) -> tuple[np.ndarray, float]:
    """Minimise ``c * sum(log loss) + |w|^2 / 2`` (the bias is not penalised)."""

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-1], theta[-1]
        z = x @ w + b
        p = 1.0 / (1.0 + np.exp(-z))
        nll = np.sum(np.logaddexp(0.0, z) - y * z)
        grad = c * np.concatenate([x.T @ (p - y), [np.sum(p - y)]]) + np.append(w, 0.0)
        return float(c * nll + 0.5 * w @ w), grad

    start = np.zeros(x.shape[1] + 1)
    result = optimize.minimize(
        loss, start, jac=True, method="L-BFGS-B", options={"gtol": 1e-8, "maxiter": 10_000}
    )
    return result.x[:-1], float(result.x[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("acquisitions", nargs="+", type=Path, help="`livecell simulate` folders")
    args = parser.parse_args()
    with UNetSegmenter.bundled() as segmenter:
        parts = [examples(a, segmenter) for a in args.acquisitions]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    weights, bias = fit_logistic(x, y)
    print(f"{len(y)} pairs, {int(y.sum())} in contact")
    for name, w in zip(MEASUREMENTS, weights, strict=True):
        print(f"  {name:22s} {w:+.4f}")
    print(f"  {'bias':22s} {bias:+.4f}")
    print(f"ContactModel(weights=({', '.join(f'{w:.4f}' for w in weights)}), bias={bias:.4f})")


if __name__ == "__main__":
    main()
