"""What the tracker sees of a frame: per-instance measurements taken from a label image.

Owns :class:`Observations` (label, centroid, area and bounding box of each instance, one
row each, as arrays, and optionally an appearance vector), :func:`measure` (one vectorised
pass over a label image: a crop of one well or a whole frame; given the image too, each
instance's appearance: mean and standard deviation of its pixels divided by the image's
median, as the segmentation U-Net normalises a well), :func:`touching_pairs` (instances
touching after a one-pixel dilation or overlapping, from the label image's 8-neighbour
adjacencies) and the split of a whole frame's measurements into wells
(:func:`assign_to_boxes`, :func:`split_by_box`), so a chip of thousands of wells is
measured with a handful of numpy calls.

Coordinates are pixels: ``x`` the column, ``y`` the row, centroids as the mean pixel
index (the centre of pixel ``(r, c)`` is ``(c, r)``). Boxes are ``(x0, y0, x1, y1)`` with
``x1``, ``y1`` exclusive, as in the simulator's ``wells.csv``. No I/O here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "APPEARANCE_FEATURES",
    "Observations",
    "assign_to_boxes",
    "measure",
    "neighbour_pixel_pairs",
    "split_by_box",
    "touching_pairs",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Observations:
    """The instances of one label image (or one well's share of it), one row each.

    ``label`` the instance's value in the label image; ``x_px``, ``y_px`` its centroid;
    ``area_px`` its pixel count; ``bbox`` ``[N, 4]`` as ``(x0, y0, x1, y1)``, exclusive
    ends, in the same frame of reference as the centroid; ``appearance`` ``[N, K]``
    per-instance intensity features (:data:`APPEARANCE_FEATURES`), or ``None`` when
    measured from labels alone.
    """

    label: IntArray
    x_px: FloatArray
    y_px: FloatArray
    area_px: FloatArray
    bbox: IntArray
    appearance: FloatArray | None = None

    def __post_init__(self) -> None:
        n = len(self.label)
        if not (len(self.x_px) == len(self.y_px) == len(self.area_px) == n):
            raise ValueError("label, x_px, y_px and area_px must have the same length")
        if self.bbox.shape != (n, 4):
            raise ValueError(f"bbox must be [{n}, 4], got {self.bbox.shape}")
        if self.appearance is not None and (
            self.appearance.ndim != 2 or self.appearance.shape[0] != n
        ):
            raise ValueError(f"appearance must be [{n}, K], got {self.appearance.shape}")

    def __len__(self) -> int:
        return len(self.label)

    @classmethod
    def empty(cls) -> Observations:
        return cls(
            label=np.zeros(0, np.int64),
            x_px=np.zeros(0),
            y_px=np.zeros(0),
            area_px=np.zeros(0),
            bbox=np.zeros((0, 4), np.int64),
        )

    @classmethod
    def from_arrays(
        cls,
        label: npt.ArrayLike,
        x_px: npt.ArrayLike,
        y_px: npt.ArrayLike,
        area_px: npt.ArrayLike,
        bbox: npt.ArrayLike | None = None,
        appearance: npt.ArrayLike | None = None,
    ) -> Observations:
        """Observations from plain arrays; without ``bbox`` a square of the area's side."""
        x = np.asarray(x_px, np.float64)
        y = np.asarray(y_px, np.float64)
        area = np.asarray(area_px, np.float64)
        if bbox is None:
            half = np.sqrt(np.maximum(area, 1.0)) / 2
            box = np.stack(
                [np.floor(x - half), np.floor(y - half), np.ceil(x + half), np.ceil(y + half)],
                axis=1,
            ).astype(np.int64)
        else:
            box = np.asarray(bbox, np.int64).reshape(-1, 4)
        features = None
        if appearance is not None:
            features = np.asarray(appearance, np.float64)
            if features.ndim != 2:  # one feature per instance, or a flat row-major block
                features = features.reshape(len(x), -1 if features.size else 0)
        return cls(np.asarray(label, np.int64), x, y, area, box, features)

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> Observations:
        return Observations(
            self.label[index], self.x_px[index], self.y_px[index], self.area_px[index],
            self.bbox[index], None if self.appearance is None else self.appearance[index],
        )  # fmt: skip

    def shifted(self, dx_px: float, dy_px: float) -> Observations:
        """The same instances in a frame of reference moved by ``(-dx, -dy)``."""
        offset = np.array([dx_px, dy_px, dx_px, dy_px], np.int64)
        return Observations(
            self.label, self.x_px - dx_px, self.y_px - dy_px, self.area_px, self.bbox - offset,
            self.appearance,
        )  # fmt: skip


def measure(
    labels: npt.NDArray[np.integer], image: npt.NDArray[np.number] | None = None
) -> Observations:
    """Label, centroid, area and box of every instance (value > 0) of a 2-D label image.

    One pass: ``np.bincount`` over the foreground pixels for areas and centroids,
    ``scipy.ndimage.find_objects`` for the boxes. Instances are in increasing label order.
    With ``image`` (the pixels the labels segment, same shape) each instance also gets
    its :data:`APPEARANCE_FEATURES`, from the image divided by its median (a well's crop:
    the well's median, so illumination and exposure cancel).
    """
    from scipy import ndimage

    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"labels must be a 2-D image, got shape {lab.shape}")
    if lab.size == 0:
        return Observations.empty()
    if np.issubdtype(lab.dtype, np.signedinteger) and lab.min() < 0:
        raise ValueError("labels must be >= 0")
    pixels = None
    if image is not None:
        pixels = np.asarray(image)
        if pixels.shape != lab.shape:
            raise ValueError(f"image must have the labels' shape {lab.shape}, got {pixels.shape}")
    flat = lab.ravel()
    where = np.flatnonzero(flat)
    if len(where) == 0:
        return Observations.empty()
    values = flat[where].astype(np.intp)
    rows, cols = np.divmod(where, lab.shape[1])
    size = int(values.max()) + 1
    area = np.bincount(values, minlength=size).astype(np.float64)
    present = np.flatnonzero(area)
    sum_x = np.bincount(values, weights=cols, minlength=size)
    sum_y = np.bincount(values, weights=rows, minlength=size)
    slices = ndimage.find_objects(lab.astype(np.int32, copy=False))
    bbox = np.array(
        [
            (s[1].start, s[0].start, s[1].stop, s[0].stop)
            for s in (slices[i - 1] for i in present.tolist())
            if s is not None
        ],
        dtype=np.int64,
    ).reshape(-1, 4)
    return Observations(
        label=present.astype(np.int64),
        x_px=sum_x[present] / area[present],
        y_px=sum_y[present] / area[present],
        area_px=area[present],
        bbox=bbox,
        appearance=None if pixels is None else _appearance(pixels, where, values, area, present),
    )


APPEARANCE_FEATURES = ("mean", "std")
"""The appearance vector's entries: mean and standard deviation of an instance's pixels,
each pixel divided by the image's median (1.0 is the median background; the median of
every other pixel of every other row, for speed)."""


def _appearance(
    pixels: npt.NDArray[np.number],
    where: npt.NDArray[np.intp],
    values: npt.NDArray[np.intp],
    area: FloatArray,
    present: npt.NDArray[np.intp],
) -> FloatArray:
    """Per instance: mean and standard deviation of the median-normalised pixels.

    The median is taken over every other pixel of every other row: a quarter of the
    pixels, within ~0.1 % of the full median on a well and a third of its time.
    """
    median = float(np.median(pixels[::2, ::2]))
    scale = 1.0 / median if median > 0 else 1.0
    z = pixels.ravel()[where].astype(np.float64) * scale
    size = len(area)
    n = area[present]
    mean = np.bincount(values, weights=z, minlength=size)[present] / n
    square = np.bincount(values, weights=z * z, minlength=size)[present] / n
    std = np.sqrt(np.maximum(square - mean * mean, 0.0))
    return np.stack([mean, std], axis=1)


def touching_pairs(labels: npt.NDArray[np.integer]) -> IntArray:
    """Pairs ``[P, 2]`` (``a < b``, sorted, unique) of instances that touch.

    Two instances touch when one, dilated by one pixel (3 x 3 square), meets the other:
    in a label image that is two different non-zero labels at 8-neighbouring pixels.
    Where cells overlap, the label image shows the top one bordered by the other, so
    overlapping cells are touching pairs too. Integer images (labels below 2**31) are
    scanned at their foreground pixels only, each against its right, lower and two lower
    diagonal neighbours, the pairs de-duplicated as one integer code each.
    """
    image = np.asarray(labels)
    if image.ndim != 2:
        raise ValueError(f"labels must be a 2-D image, got shape {image.shape}")
    if np.issubdtype(image.dtype, np.integer) and image.size:
        top = int(image.max())
        if top < 2**31:  # pair codes ``a * (top + 1) + b`` fit in int64
            return _touching_pairs_sparse(image, top)
    pairs = neighbour_pixel_pairs(image)
    return np.unique(pairs, axis=0) if len(pairs) else pairs


def neighbour_pixel_pairs(labels: npt.NDArray[np.integer]) -> IntArray:
    """Every pair of 8-neighbouring pixels with two different non-zero labels, as the
    labels ``[K, 2]`` (``a < b`` per row, one row per pixel pair, unsorted)."""
    image = np.asarray(labels)
    found: list[IntArray] = []
    for a, b in (
        (image[:, :-1], image[:, 1:]),
        (image[:-1, :], image[1:, :]),
        (image[:-1, :-1], image[1:, 1:]),
        (image[:-1, 1:], image[1:, :-1]),
    ):
        differ = (a != b) & (a > 0) & (b > 0)
        if differ.any():
            found.append(np.stack([a[differ], b[differ]], axis=1).astype(np.int64))
    if not found:
        return np.zeros((0, 2), np.int64)
    return np.sort(np.concatenate(found), axis=1)


def _touching_pairs_sparse(image: npt.NDArray[np.integer], top: int) -> IntArray:
    """:func:`touching_pairs` looking only at the foreground pixels' 4 forward neighbours."""
    h, w = image.shape
    flat = image.ravel()
    where = np.flatnonzero(flat > 0)
    if len(where) == 0:
        return np.zeros((0, 2), np.int64)
    value = flat[where].astype(np.int64)
    col = where % w
    not_last_col = col < w - 1
    not_first_col = col > 0
    not_last_row = where < (h - 1) * w
    codes: list[IntArray] = []
    for step, ok in (
        (1, not_last_col),
        (w, not_last_row),
        (w + 1, not_last_row & not_last_col),
        (w - 1, not_last_row & not_first_col),
    ):
        a = value[ok]
        b = flat[where[ok] + step].astype(np.int64)
        differ = (a != b) & (b > 0)
        if differ.any():
            a, b = a[differ], b[differ]
            codes.append(np.minimum(a, b) * (top + 1) + np.maximum(a, b))
    if not codes:
        return np.zeros((0, 2), np.int64)
    unique = np.unique(np.concatenate(codes))
    return np.stack([unique // (top + 1), unique % (top + 1)], axis=1)


def assign_to_boxes(
    x_px: npt.ArrayLike, y_px: npt.ArrayLike, boxes: npt.ArrayLike, *, margin_px: float = 0.0
) -> IntArray:
    """For each point, the index of the box ``(x0, y0, x1, y1)`` holding it, or -1.

    A box holds a point when ``x0 - margin <= x < x1 + margin`` (and so for y). Made for
    a lattice of wells: the candidate box is looked up by the ranks of the box edges
    (``np.searchsorted``), so thousands of boxes cost no more than a few array passes.
    Boxes grown by the margin must not overlap; off-lattice boxes (whose corners do not
    share rows and columns) may be missed for points near another box's edge.
    """
    x = np.asarray(x_px, np.float64).ravel()
    y = np.asarray(y_px, np.float64).ravel()
    box = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = np.full(len(x), -1, np.int64)
    if len(box) == 0 or len(x) == 0:
        return out
    xs = np.unique(box[:, 0])
    ys = np.unique(box[:, 1])
    table = np.full((len(ys), len(xs)), -1, np.int64)
    table[np.searchsorted(ys, box[:, 1]), np.searchsorted(xs, box[:, 0])] = np.arange(len(box))
    col = np.searchsorted(xs - margin_px, x, side="right") - 1
    row = np.searchsorted(ys - margin_px, y, side="right") - 1
    ok = (col >= 0) & (row >= 0)
    cand = np.full(len(x), -1, np.int64)
    cand[ok] = table[row[ok], col[ok]]
    ok &= cand >= 0
    hit = cand[ok]
    inside = (
        (x[ok] >= box[hit, 0] - margin_px)
        & (x[ok] < box[hit, 2] + margin_px)
        & (y[ok] >= box[hit, 1] - margin_px)
        & (y[ok] < box[hit, 3] + margin_px)
    )
    out[np.flatnonzero(ok)[inside]] = hit[inside]
    return out


def split_by_box(
    observations: Observations,
    boxes: npt.ArrayLike,
    *,
    margin_px: float = 0.0,
    relative: bool = True,
) -> list[Observations]:
    """A whole frame's observations split into one :class:`Observations` per box.

    Instances whose centroid lies in no box (grown by ``margin_px``) are dropped. With
    ``relative`` the coordinates are made relative to the box's top-left corner, as if
    measured on the crop.
    """
    box = np.asarray(boxes, np.int64).reshape(-1, 4)
    which = assign_to_boxes(observations.x_px, observations.y_px, box, margin_px=margin_px)
    order = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange(len(box) + 1)).tolist()
    order = order[bounds[0] :]  # instances in no box sort first (-1)
    inside = which[order]
    label, x, y = observations.label[order], observations.x_px[order], observations.y_px[order]
    features = None if observations.appearance is None else observations.appearance[order]
    area, bbox = observations.area_px[order], observations.bbox[order]
    if relative:
        x = x - box[inside, 0]
        y = y - box[inside, 1]
        bbox = bbox - box[inside][:, [0, 1, 0, 1]]
    start = bounds[0]
    # slices of arrays already checked to be of one length: built without re-checking
    new = object.__new__
    parts = []
    for lo, hi in itertools.pairwise(bounds):
        a, b = lo - start, hi - start
        part = new(Observations)
        part.__dict__.update(
            label=label[a:b], x_px=x[a:b], y_px=y[a:b], area_px=area[a:b], bbox=bbox[a:b],
            appearance=None if features is None else features[a:b],
        )  # fmt: skip
        parts.append(part)
    return parts
