"""Segmentation score: per ground-truth cell, the IoU of its one-to-one matched prediction.

Ground-truth cells and predicted instances of one well are matched one to one by the
Hungarian algorithm on IoU (maximum total IoU); a cell left unmatched, or matched to an
instance it does not overlap, scores 0. :class:`SegmentationScore` pools cells over
wells and frames and reports the mean IoU overall and by the number of ground-truth
cells in the well at that frame (the harder, crowded wells apart).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment


def iou_matrix(
    truth: npt.NDArray[np.integer], predicted: npt.NDArray[np.integer]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """``(truth_ids, predicted_ids, iou)``: IoU ``[len(truth_ids), len(predicted_ids)]``."""
    if truth.shape != predicted.shape:
        raise ValueError(f"shapes differ: truth {truth.shape}, predicted {predicted.shape}")
    t_ids, t_inv = np.unique(truth.ravel(), return_inverse=True)
    p_ids, p_inv = np.unique(predicted.ravel(), return_inverse=True)
    counts = np.zeros((t_ids.size, p_ids.size), dtype=np.int64)
    np.add.at(counts, (t_inv, p_inv), 1)
    t_area = counts.sum(axis=1)
    p_area = counts.sum(axis=0)
    t_keep = t_ids != 0
    p_keep = p_ids != 0
    inter = counts[np.ix_(t_keep, p_keep)].astype(np.float64)
    union = t_area[t_keep][:, None] + p_area[p_keep][None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return t_ids[t_keep].astype(np.int64), p_ids[p_keep].astype(np.int64), iou


def cell_ious(
    truth: npt.NDArray[np.integer], predicted: npt.NDArray[np.integer]
) -> dict[int, float]:
    """Ground-truth label -> IoU with its one-to-one matched predicted instance (0 if none).

    Ties are broken by where instances are, not by their numbers: the predicted
    instances enter the assignment in raster order of their first pixel.
    """
    t_ids, p_ids, iou = iou_matrix(truth, predicted)
    scores = {int(t): 0.0 for t in t_ids}
    if iou.size:
        values, first_pixel = np.unique(predicted.ravel(), return_index=True)
        where = dict(zip(values.tolist(), first_pixel.tolist(), strict=True))
        iou = iou[:, np.argsort([where[int(p)] for p in p_ids], kind="stable")]
        rows, cols = linear_sum_assignment(iou, maximize=True)
        for r, c in zip(rows, cols, strict=True):
            scores[int(t_ids[r])] = float(iou[r, c])
    return scores


@dataclass
class SegmentationScore:
    """Per-cell IoUs pooled over wells, keyed by the number of cells in the cell's well."""

    by_count: dict[int, list[float]] = field(default_factory=dict)

    def add_well(self, truth: npt.NDArray[np.integer], predicted: npt.NDArray[np.integer]) -> None:
        """Score one well (label images of one shape); an empty well adds nothing."""
        scores = cell_ious(truth, predicted)
        if scores:
            self.by_count.setdefault(len(scores), []).extend(scores.values())

    @property
    def cells(self) -> int:
        return sum(len(v) for v in self.by_count.values())

    def mean_iou(self) -> float:
        """Mean IoU over every scored cell (NaN when none)."""
        values = [v for ious in self.by_count.values() for v in ious]
        return float(np.mean(values)) if values else float("nan")

    def mean_iou_by_count(self) -> dict[int, tuple[float, int]]:
        """Cells per well -> (mean IoU, number of cells), sorted by cells per well."""
        return {
            n: (float(np.mean(self.by_count[n])), len(self.by_count[n]))
            for n in sorted(self.by_count)
        }
