"""Is the simulated data trivially separable? (issue 3, acceptance 3)

A deliberately simple baseline: a logistic regression on three numbers per
cell crop (mean, standard deviation, foreground area). If it separated live
from dead nanowell cells above 90 % balanced accuracy, a model trained on the
simulator would have learnt little; the simulator would need subtler early
stages or more variation. Re-run with::

    python -m livecell.simulation.baseline

scikit-learn is needed (a development dependency, imported here only).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from livecell.simulation.nanowell import NanowellParams, NanowellSimulator
from livecell.simulation.scene import LIVE


@dataclass(frozen=True)
class CropTable:
    """One row per (seed, position, t, track): the features, dead or not, and the group."""

    features: np.ndarray  # (n, 3) float64
    dead: np.ndarray  # (n,) bool: the row is at or after the track's death onset
    groups: np.ndarray  # (n,) int: the seed the row comes from
    frames_since_onset: np.ndarray  # (n,) int, -1 for live rows


def crop_features(image: np.ndarray, x: float, y: float, crop_px: int) -> tuple[float, float, int]:
    """Mean, standard deviation and foreground area (Otsu on local contrast) of a crop."""
    half = crop_px // 2
    h, w = image.shape
    cx, cy = round(x), round(y)
    x0, y0 = min(max(cx - half, 0), w - crop_px), min(max(cy - half, 0), h - crop_px)
    crop = image[y0 : y0 + crop_px, x0 : x0 + crop_px].astype(np.float32)
    smooth = cv2.GaussianBlur(crop, (0, 0), 1.0)
    deviation = np.abs(smooth - float(np.median(smooth)))
    top = float(deviation.max())
    if top <= 0:
        return float(crop.mean()), float(crop.std()), 0
    scaled = (deviation * (255.0 / top)).astype(np.uint8)
    _, fg = cv2.threshold(scaled, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(crop.mean()), float(crop.std()), int(fg.sum())


def nanowell_crop_table(
    params: NanowellParams, *, seeds: Sequence[int], frames: int, crop_px: int = 64
) -> CropTable:
    rows: list[tuple[float, float, int]] = []
    dead: list[bool] = []
    groups: list[int] = []
    since: list[int] = []
    for seed in seeds:
        sim = NanowellSimulator(params, seed=seed)
        onsets: dict[tuple[str, int], int] = {}
        for _ in range(frames):
            for frame in sim.step():
                phase = frame.image if frame.image.ndim == 2 else frame.image[0]
                for cell in frame.cells:
                    key = (frame.position, cell.track)
                    if cell.state != LIVE:
                        onsets.setdefault(key, frame.t)
                    rows.append(crop_features(phase, cell.x, cell.y, crop_px))
                    dead.append(cell.state != LIVE)
                    groups.append(seed)
                    since.append(frame.t - onsets[key] if key in onsets else -1)
    return CropTable(
        np.asarray(rows, dtype=np.float64),
        np.asarray(dead, dtype=bool),
        np.asarray(groups, dtype=np.int64),
        np.asarray(since, dtype=np.int64),
    )


def nanowell_live_dead_baseline(
    params: NanowellParams | None = None,
    *,
    seeds: Sequence[int] = (0, 1, 2, 3),
    frames: int = 72,
    crop_px: int = 64,
) -> float:
    """Balanced accuracy of live vs dead, leave-one-seed-out, from crop mean, sd and area.

    Dead rows are every frame of a dying track from its ``onset_t`` on; live
    rows are all the others. The default data is 1024 px frames of 4 x 4 wells
    (the default cell density and rates) over 72 frames (6 h at 5 min).
    """
    params = params or NanowellParams(frame_size_px=1024, wells_per_side=4)
    table = nanowell_crop_table(params, seeds=seeds, frames=frames, crop_px=crop_px)
    return float(balanced_accuracy_by_group(table)[0])


def balanced_accuracy_by_group(table: CropTable) -> tuple[float, np.ndarray]:
    """Pooled out-of-fold balanced accuracy (one fold per group) and the predictions."""
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import balanced_accuracy_score
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the baseline needs scikit-learn: pip install scikit-learn") from exc
    predicted = np.zeros(table.dead.shape, dtype=bool)
    for group in np.unique(table.groups):
        test = table.groups == group
        train = ~test
        if table.dead[train].all() or not table.dead[train].any():
            raise ValueError("a training fold holds only one class: use more seeds or frames")
        model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced"))
        model.fit(table.features[train], table.dead[train])
        predicted[test] = model.predict(table.features[test])
    return float(balanced_accuracy_score(table.dead, predicted)), predicted


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="seeds 0..N-1, one fold each")
    parser.add_argument("--frames", type=int, default=72)
    parser.add_argument("--size", type=int, default=1024, help="frame size, px")
    parser.add_argument("--wells", type=int, default=4, help="wells per side")
    parser.add_argument("--crop", type=int, default=64, help="crop size, px")
    args = parser.parse_args(argv)
    params = dataclasses.replace(
        NanowellParams(), frame_size_px=args.size, wells_per_side=args.wells
    )
    table = nanowell_crop_table(
        params, seeds=range(args.seeds), frames=args.frames, crop_px=args.crop
    )
    score, predicted = balanced_accuracy_by_group(table)
    print(f"rows: {table.dead.size} ({int(table.dead.sum())} dead)")
    print(f"balanced accuracy, live vs dead, leave-one-seed-out: {score:.3f}")
    for lo, hi in ((0, 3), (3, 6), (6, 12), (12, 10_000)):
        sel = (table.frames_since_onset >= lo) & (table.frames_since_onset < hi)
        if sel.any():
            print(
                f"  dead rows {lo}..{hi - 1} frames after onset: recall {predicted[sel].mean():.3f}"
            )
    live = ~table.dead
    print(f"  live rows: specificity {(~predicted[live]).mean():.3f}")


if __name__ == "__main__":
    main()
