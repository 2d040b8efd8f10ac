"""Which instances of a well touch, judged from the masks and the segmenter's foreground.

Owns :func:`candidate_pairs` (the pairs of instances near enough to touch, with four
measurements each and the point where they come closest), :class:`ContactModel` (a
logistic score over the four measurements, fitted on simulated acquisitions),
:func:`contact_pairs` (the pairs it calls touching in one label image) and
:func:`pair_patches` (the small images around each pair's closest point that the
contact net, :mod:`livecell.tracking.contact_net`, reads instead).

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

A pair's *closest point* is the pixel with the least sum of distances to both cells
(on the shortest segment between them; ties go to the more central pixel, then the
first in row order); its patch is ``2 * half_px`` square around it, four channels: the
U-Net's normalised image (clipped to ``IMAGE_CLIP`` and divided by ``IMAGE_SCALE``),
the mask of ``a``, the mask of ``b`` and the foreground probability.
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
    "CandidatePairs",
    "ContactModel",
    "candidate_pairs",
    "contact_pairs",
    "pair_patches",
    "track_pairs",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

MEASUREMENTS = ("log1p_adjacent", "gap_px", "between_foreground", "log1p_between_px")
PATCH_CHANNELS = ("image", "mask_a", "mask_b", "foreground")
IMAGE_CLIP = (-5.0, 15.0)
"""The normalised image (``livecell.segmentation.unet.normalise_crop``) is clipped to
this range, then divided by ``IMAGE_SCALE``, in a patch."""
IMAGE_SCALE = 5.0


@dataclass(frozen=True, slots=True)
class CandidatePairs:
    """The pairs of one label image near enough to touch: ``pairs [P, 2]`` (``a < b``),
    ``measurements [P, 4]`` (:data:`MEASUREMENTS`) and ``closest_rc [P, 2]`` (row,
    column of each pair's closest point)."""

    pairs: IntArray
    measurements: FloatArray
    closest_rc: IntArray

    def __len__(self) -> int:
        return len(self.pairs)


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


def candidate_pairs(
    labels: npt.NDArray[np.integer],
    foreground: npt.NDArray[np.floating],
    *,
    near_px: float = BUNDLED_CONTACT_MODEL.near_px,
    max_gap_px: float = BUNDLED_CONTACT_MODEL.max_gap_px,
) -> CandidatePairs:
    """The pairs at most ``max_gap_px`` apart, their measurements and closest points."""
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
    closest: list[tuple[int, int]] = []
    for k, a in enumerate(ids):
        for b in ids[k + 1 :]:
            measured = _measure_pair(labels, foreground, distances[a], distances[b], b, near_px)
            if measured is None or measured.gap_px > max_gap_px:
                continue
            log_adjacent = float(np.log1p(adjacent.get((a, b), 0)))
            rows.append(
                (
                    log_adjacent,
                    measured.gap_px,
                    measured.between_foreground,
                    float(np.log1p(measured.between_px)),
                )
            )
            pairs.append((a, b))
            closest.append(measured.closest_rc)
    return CandidatePairs(
        np.asarray(pairs, np.int64).reshape(-1, 2),
        np.asarray(rows, np.float64).reshape(-1, len(MEASUREMENTS)),
        np.asarray(closest, np.int64).reshape(-1, 2),
    )


def contact_pairs(
    labels: npt.NDArray[np.integer],
    foreground: npt.NDArray[np.floating],
    model: ContactModel = BUNDLED_CONTACT_MODEL,
) -> IntArray:
    """The pairs ``[P, 2]`` (``a < b``, sorted) the model calls touching."""
    found = candidate_pairs(labels, foreground, near_px=model.near_px, max_gap_px=model.max_gap_px)
    if len(found) == 0:
        return found.pairs
    return found.pairs[model.probability(found.measurements) >= model.threshold]


def pair_patches(
    image: npt.NDArray[np.floating],
    labels: npt.NDArray[np.integer],
    foreground: npt.NDArray[np.floating],
    found: CandidatePairs,
    half_px: int,
) -> npt.NDArray[np.float32]:
    """Float32 ``[P, 4, 2 * half_px, 2 * half_px]``: each pair's patch around its closest
    point (:data:`PATCH_CHANNELS`); ``image`` is the well's normalised crop. Beyond the
    crop, the image and foreground are mirrored and the masks are empty."""
    side = 2 * half_px
    out = np.zeros((len(found), len(PATCH_CHANNELS), side, side), np.float32)
    if len(found) == 0:
        return out
    scaled = np.clip(np.asarray(image, np.float32), *IMAGE_CLIP) / IMAGE_SCALE
    mirrored = [
        np.pad(np.asarray(x, np.float32), half_px, mode="reflect") for x in (scaled, foreground)
    ]
    padded_labels = np.pad(np.asarray(labels), half_px)
    for i, ((a, b), (r, c)) in enumerate(
        zip(found.pairs.tolist(), found.closest_rc.tolist(), strict=True)
    ):
        window = (slice(r, r + side), slice(c, c + side))
        around = padded_labels[window]
        out[i, 0] = mirrored[0][window]
        out[i, 1] = around == a
        out[i, 2] = around == b
        out[i, 3] = mirrored[1][window]
    return out


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


@dataclass(frozen=True, slots=True)
class _PairMeasurement:
    gap_px: float
    between_foreground: float
    between_px: int
    closest_rc: tuple[int, int]


def _measure_pair(
    labels: npt.NDArray[np.integer],
    foreground: npt.NDArray[np.floating],
    a: _Distances,
    b: _Distances,
    b_label: int,
    near_px: float,
) -> _PairMeasurement | None:
    """The pair's measurements, or None when the two windows hold no pixel of ``b``
    together (the cells are further apart than the reach)."""
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
    r, c = np.unravel_index(int(np.argmin(da + db + 0.01 * np.abs(da - db))), da.shape)
    return _PairMeasurement(
        float(da[in_b].min()), mean, count, (int(rows.start + r), int(cols.start + c))
    )


def _adjacent_counts(labels: npt.NDArray[np.integer]) -> dict[tuple[int, int], int]:
    """8-neighbouring pixel pairs with two different non-zero labels, counted per pair."""
    found = neighbour_pixel_pairs(labels)
    if len(found) == 0:
        return {}
    pairs, counts = np.unique(found, axis=0, return_counts=True)
    return {(int(a), int(b)): int(n) for (a, b), n in zip(pairs, counts, strict=True)}
