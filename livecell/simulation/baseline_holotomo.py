"""Acceptance check 3 for holotomography: is the simulated data more than trivially separable?

A deliberately simple baseline, logistic regression on three numbers per 160 px
patch of the MIP (mean RI, RI standard deviation and the foreground fraction
above a global Otsu threshold), is trained and tested on the five patch states
with a split grouped by seed (each seed is its own acquisition, so no patch,
frame or field is ever on both sides). If it scores above 90 % balanced
accuracy the simulator is too easy. Empty patches are left out, as the daemon
skips them.

Run ``python -m livecell.simulation.baseline_holotomo`` (about a minute).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from livecell.simulation.holotomo import HolotomoSimulator
from livecell.simulation.holotomo_params import HolotomoParams
from livecell.simulation.scene import DEFAULT_PATCH_SIZE_PX, EMPTY_PATCH, PATCH_STATES

# Like the defaults but a 1024 px field (36 patches) and 20 min frames, so 24 frames
# cover every death onset and its course, and a run takes about a minute.
BASELINE_PARAMS = HolotomoParams(size_px=1024, mip=True, frame_interval_min=20.0)


def otsu_threshold(values: npt.NDArray[np.floating]) -> float:
    """Otsu's threshold over a 256-bin histogram of ``values``."""
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return lo
    hist, edges = np.histogram(values, bins=256, range=(lo, hi))
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist).astype(float)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers)
    mean0 = m0 / np.maximum(w0, 1)
    mean1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mean0 - mean1) ** 2
    return float(centers[int(np.argmax(between))])


def mip_patch_features(
    mip: npt.NDArray[np.floating], patch_px: int = DEFAULT_PATCH_SIZE_PX
) -> npt.NDArray[np.float64]:
    """``(rows * cols, 3)``: mean, sd and foreground fraction per patch, row-major."""
    rows, cols = mip.shape[0] // patch_px, mip.shape[1] // patch_px
    tiles = (
        np.asarray(mip[: rows * patch_px, : cols * patch_px], dtype=np.float64)
        .reshape(rows, patch_px, cols, patch_px)
        .transpose(0, 2, 1, 3)
        .reshape(rows * cols, patch_px * patch_px)
    )
    fg = tiles > otsu_threshold(mip)
    return np.column_stack([tiles.mean(axis=1), tiles.std(axis=1), fg.mean(axis=1)])


def holotomo_patch_dataset(
    seeds: Sequence[int], *, frames: int, params: HolotomoParams = BASELINE_PARAMS
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Features, class indices (into PATCH_STATES) and the seed of every non-empty patch."""
    params = dataclasses.replace(params, mip=True)
    xs, ys, groups = [], [], []
    for seed in seeds:
        sim = HolotomoSimulator(params, seed=seed)
        for _ in range(frames):
            for frame in sim.step():
                feats = mip_patch_features(frame.image)
                for patch, f in zip(frame.patches, feats, strict=True):
                    if patch.state != EMPTY_PATCH:
                        xs.append(f)
                        ys.append(PATCH_STATES.index(patch.state))
                        groups.append(seed)
    return np.array(xs), np.array(ys, dtype=np.int64), np.array(groups, dtype=np.int64)


def holotomo_patch_baseline(
    seeds: Sequence[int] = tuple(range(6)),
    *,
    frames: int = 24,
    params: HolotomoParams = BASELINE_PARAMS,
    folds: int = 3,
) -> float:
    """Balanced accuracy of the baseline over a ``folds``-fold split grouped by seed."""
    x, y, groups = holotomo_patch_dataset(seeds, frames=frames, params=params)
    return score_patch_baseline(x, y, groups, folds=folds)[0]


def score_patch_baseline(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.int64],
    groups: npt.NDArray[np.int64],
    *,
    folds: int = 3,
) -> tuple[float, npt.NDArray[np.int64]]:
    """Balanced accuracy and confusion matrix (true x predicted) of grouped cross-validation."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    predicted = np.empty_like(y)
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        model = make_pipeline(
            StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000)
        )
        model.fit(x[train], y[train])
        predicted[test] = model.predict(x[test])
    matrix = confusion_matrix(y, predicted, labels=list(range(len(PATCH_STATES))))
    return float(balanced_accuracy_score(y, predicted)), matrix.astype(np.int64)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6, help="acquisitions (seeds 0..N-1)")
    parser.add_argument("--frames", type=int, default=24, help="frames per acquisition")
    args = parser.parse_args(argv)
    x, y, groups = holotomo_patch_dataset(tuple(range(args.seeds)), frames=args.frames)
    score, matrix = score_patch_baseline(x, y, groups)
    print("rows: true state, columns: predicted, in the order", ", ".join(PATCH_STATES))
    for name, row in zip(PATCH_STATES, matrix, strict=True):
        print(f"{name:>13} {' '.join(f'{v:6d}' for v in row)}")
    print(f"holotomo patch baseline balanced accuracy: {score:.3f}")


if __name__ == "__main__":
    main()
