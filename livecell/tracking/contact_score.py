"""Which instances of a well touch, judged from the masks and the segmenter's foreground.

Owns :class:`ContactModel` (a logistic score over four measurements of a pair of
instances, with the weights fitted on simulated acquisitions) and
:func:`contact_pairs` (the pairs it calls touching in one label image).

Why not adjacency alone: the simulator (and biology) calls two cells in contact when
their full masks come within one pixel, which is at the optical resolution limit. The
label image of a seeded watershed makes two cells adjacent whenever the pixels between
them pass the foreground threshold, so 1 to 2 frame "brushes" come and go with the
noise. The segmenter's own foreground probability in the pixels between the two
cells says more: it stays high where the cells really meet and dips where a thin gap
shows. The four measurements of a pair ``(a, b)``:

- ``log1p(adjacent)``: how many 8-neighbouring pixel pairs have one label each;
- ``gap_px``: the least distance from ``a``'s pixels to ``b``'s (1 when adjacent);
- ``between_foreground``: mean foreground probability over the pixels within
  ``near_px`` of both cells (the "bridge");
- ``log1p(between_px)``: how many such pixels there are.

Pairs further apart than ``max_gap_px`` are never in contact. Pure numpy/scipy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from livecell.tracking.nanowell import TrackedCell
from livecell.tracking.observations import neighbour_pixel_pairs

__all__ = [
    "BUNDLED_CONTACT_MODEL",
    "ContactModel",
    "contact_pairs",
    "pair_measurements",
    "track_pairs",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

MEASUREMENTS = ("log1p_adjacent", "gap_px", "between_foreground", "log1p_between_px")


@dataclass(frozen=True, slots=True)
class ContactModel:
    """``p = sigmoid(bias + weights . measurements)``; touching when ``p >= threshold``."""

    weights: tuple[float, float, float, float]
    bias: float
    threshold: float = 0.5
    near_px: float = 3.0
    max_gap_px: float = 6.0

    def __post_init__(self) -> None:
        if len(self.weights) != len(MEASUREMENTS):
            raise ValueError(f"weights: one per measurement {MEASUREMENTS}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold must lie in (0, 1)")
        if self.near_px <= 0 or self.max_gap_px < 1:
            raise ValueError("near_px > 0 and max_gap_px >= 1")

    def probability(self, measurements: FloatArray) -> FloatArray:
        z = self.bias + measurements @ np.asarray(self.weights)
        return np.asarray(1.0 / (1.0 + np.exp(-z)))


BUNDLED_CONTACT_MODEL = ContactModel(weights=(0.5794, 1.5958, 6.6565, 1.8263), bias=-14.7606)
"""Fitted on simulated seeds 131-134 with the bundled U-Net (scikit-learn's logistic
regression, C = 1; ``scripts/fit_contact_model.py`` refits it without scikit-learn and
lands within 0.002 of every weight, with the same call on every pair of seeds 91-95)."""


def pair_measurements(
    labels: npt.NDArray[np.integer],
    foreground: npt.NDArray[np.floating],
    *,
    near_px: float = BUNDLED_CONTACT_MODEL.near_px,
    max_gap_px: float = BUNDLED_CONTACT_MODEL.max_gap_px,
) -> tuple[IntArray, FloatArray]:
    """Pairs ``[P, 2]`` (``a < b``) at most ``max_gap_px`` apart and their measurements
    ``[P, 4]`` (:data:`MEASUREMENTS`)."""
    labels = np.asarray(labels)
    foreground = np.asarray(foreground)
    if labels.ndim != 2 or labels.shape != foreground.shape:
        raise ValueError("labels and foreground must be 2-D images of one shape")
    ids = [int(i) for i in np.unique(labels) if i > 0]
    adjacent = _adjacent_counts(labels) if len(ids) > 1 else {}
    reach = int(np.ceil(max_gap_px + near_px)) + 1
    boxes = ndimage.find_objects(labels)
    distances = {i: _Distances.around(labels, i, boxes[i - 1], reach) for i in ids}
    pairs: list[tuple[int, int]] = []
    rows: list[tuple[float, float, float, float]] = []
    for k, a in enumerate(ids):
        for b in ids[k + 1 :]:
            measured = _measure_pair(labels, foreground, distances[a], distances[b], b, near_px)
            if measured is None or measured[0] > max_gap_px:
                continue
            gap_px, between_foreground, between_px = measured
            log_adjacent = float(np.log1p(adjacent.get((a, b), 0)))
            rows.append((log_adjacent, gap_px, between_foreground, float(np.log1p(between_px))))
            pairs.append((a, b))
    return (
        np.asarray(pairs, np.int64).reshape(-1, 2),
        np.asarray(rows, np.float64).reshape(-1, len(MEASUREMENTS)),
    )


def contact_pairs(
    labels: npt.NDArray[np.integer],
    foreground: npt.NDArray[np.floating],
    model: ContactModel = BUNDLED_CONTACT_MODEL,
) -> IntArray:
    """The pairs ``[P, 2]`` (``a < b``, sorted) the model calls touching."""
    pairs, measurements = pair_measurements(
        labels, foreground, near_px=model.near_px, max_gap_px=model.max_gap_px
    )
    if len(pairs) == 0:
        return pairs
    return pairs[model.probability(measurements) >= model.threshold]


def track_pairs(
    label_pairs: npt.NDArray[np.integer], cells: Iterable[TrackedCell]
) -> frozenset[tuple[int, int]]:
    """Label pairs as pairs of the tracks holding them (``a < b``); a cell's fragments
    count as the cell, and pairs within one track or with an untracked label drop out."""
    track_of = {
        label: cell.track
        for cell in cells
        if cell.label is not None
        for label in (cell.label, *cell.fragments)
    }
    out = set()
    for a, b in np.asarray(label_pairs).tolist():
        ta, tb = track_of.get(a), track_of.get(b)
        if ta is not None and tb is not None and ta != tb:
            out.add((ta, tb) if ta < tb else (tb, ta))
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class _Distances:
    """Distance (px) to one instance over a window around it: exact inside the window,
    which holds everything within the window's reach of the instance."""

    window: tuple[slice, slice]
    px: FloatArray

    @classmethod
    def around(
        cls, labels: npt.NDArray[np.integer], label: int, box: tuple[slice, slice], reach: int
    ) -> _Distances:
        window = tuple(
            slice(max(0, s.start - reach), min(n, s.stop + reach))
            for s, n in zip(box, labels.shape, strict=True)
        )
        rows, cols = window
        return cls((rows, cols), ndimage.distance_transform_edt(labels[rows, cols] != label))

    def over(self, rows: slice, cols: slice) -> FloatArray:
        """The distances over ``rows`` x ``cols`` (image coordinates, inside the window)."""
        r0, c0 = self.window[0].start, self.window[1].start
        return self.px[rows.start - r0 : rows.stop - r0, cols.start - c0 : cols.stop - c0]


def _measure_pair(
    labels: npt.NDArray[np.integer],
    foreground: npt.NDArray[np.floating],
    a: _Distances,
    b: _Distances,
    b_label: int,
    near_px: float,
) -> tuple[float, float, int] | None:
    """(gap, mean foreground between, pixels between), or None when the two windows
    hold no pixel of ``b`` together (the cells are further apart than the reach)."""
    rows, cols = (
        slice(max(sa.start, sb.start), min(sa.stop, sb.stop))
        for sa, sb in zip(a.window, b.window, strict=True)
    )
    if rows.start >= rows.stop or cols.start >= cols.stop:
        return None
    in_b = labels[rows, cols] == b_label
    if not in_b.any():
        return None
    da, db = a.over(rows, cols), b.over(rows, cols)
    between = (da <= near_px) & (db <= near_px)
    count = int(between.sum())
    mean = float(foreground[rows, cols][between].mean()) if count else 0.0
    return float(da[in_b].min()), mean, count


def _adjacent_counts(labels: npt.NDArray[np.integer]) -> dict[tuple[int, int], int]:
    """8-neighbouring pixel pairs with two different non-zero labels, counted per pair."""
    found = neighbour_pixel_pairs(labels)
    if len(found) == 0:
        return {}
    pairs, counts = np.unique(found, axis=0, return_counts=True)
    return {(int(a), int(b)): int(n) for (a, b), n in zip(pairs, counts, strict=True)}
