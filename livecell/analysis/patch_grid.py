"""Patch mode's pure image steps: projection, the tiling grid, the empty-patch cut.

Every function takes and returns numpy arrays (no clocks, files or sockets):

- :func:`projection` reduces a frame to the 2D image patch mode reads: channel 0,
  maximum intensity projection over Z (``ZYX -> YX``).
- :func:`patch_grid` is the tiling: non-overlapping ``patch_px`` squares from pixel
  ``(0, 0)``, ``H // patch_px`` rows by ``W // patch_px`` columns, row-major. The
  right and bottom remainder (fewer than ``patch_px`` pixels) is not classified,
  exactly as the simulator's ``patches.csv`` grid, so patch ``(row, col)`` here is
  patch ``(row, col)`` there. A frame smaller than one patch in either direction has a
  0 x 0 grid.
- :func:`otsu_threshold` is the global Otsu threshold of the whole image (256-bin
  histogram between its finite minimum and maximum), and :func:`foreground_ratio`
  the fraction of each patch's pixels above it; patches under a minimum ratio are
  skipped as empty (seed 004: a global Otsu threshold plus a foreground-ratio cut).
- :func:`finite_patches` says which patches hold only finite pixels: a NaN or an
  infinity turns every class probability into NaN, so such a patch is not classified.
- :func:`tile` cuts the kept patches out as one ``[N, 1, patch_px, patch_px]``
  float32 batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "Grid",
    "finite_patches",
    "foreground_ratio",
    "otsu_threshold",
    "patch_grid",
    "projection",
    "tile",
]

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
OTSU_BINS = 256
OTSU_TAIL = 1e-4  # share of pixels at each end left out of the histogram's span
OTSU_SAMPLE_STEP = 7  # the span's quantiles are taken over every 7th finite pixel


@dataclass(frozen=True, slots=True)
class Grid:
    """The patch grid of one frame size: ``rows`` x ``cols`` patches of ``patch_px``."""

    patch_px: int
    rows: int
    cols: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    @property
    def covered(self) -> tuple[int, int]:
        """Pixels ``(height, width)`` from the top-left corner that the patches cover."""
        return (self.rows * self.patch_px, self.cols * self.patch_px)

    def bounds(self, row: int, col: int) -> tuple[int, int, int, int]:
        """``(y0, y1, x0, x1)`` of patch ``(row, col)``."""
        p = self.patch_px
        return (row * p, (row + 1) * p, col * p, (col + 1) * p)


def patch_grid(height: int, width: int, patch_px: int) -> Grid:
    """The grid for a ``height`` x ``width`` frame (see the module docstring for edges)."""
    if patch_px < 1:
        raise ValueError(f"patch size must be at least 1 pixel, got {patch_px}")
    if height < 0 or width < 0:
        raise ValueError(f"frame size must not be negative, got {height} x {width}")
    rows, cols = height // patch_px, width // patch_px
    if rows == 0 or cols == 0:
        return Grid(patch_px, 0, 0)  # no patch fits: 0 x 0, never 0 x n (states must be a grid)
    return Grid(patch_px, rows, cols)


def projection(pixels: npt.NDArray[np.generic], axes: str) -> FloatArray:
    """The 2D float32 image of a frame: channel 0 of ``C``, maximum over ``Z``."""
    a = np.asarray(pixels)
    if a.ndim != len(axes):
        raise ValueError(f"pixels have {a.ndim} dimensions, axes {axes!r} say {len(axes)}")
    if "C" in axes:
        a = np.take(a, 0, axis=axes.index("C"))
        axes = axes.replace("C", "")
    if "Z" in axes:
        a = a.max(axis=axes.index("Z"))
        axes = axes.replace("Z", "")
    if axes != "YX":
        raise ValueError(f"axes {axes!r} left after projection; patch mode reads YX")
    return np.ascontiguousarray(a, dtype=np.float32)


def otsu_threshold(image: FloatArray) -> float:
    """Global Otsu threshold of ``image`` over its finite pixels (a bin edge).

    The histogram spans the pixels between the ``OTSU_TAIL`` and ``1 - OTSU_TAIL``
    quantiles (of every ``OTSU_SAMPLE_STEP``-th pixel), the rest counted in its end
    bins: spanning the minimum to the maximum, one hot pixel squeezed every other
    into one bin and left the frame without a foreground. A constant (or all
    non-finite) image has no threshold: +inf, so every patch of it is empty.
    """
    values = image[np.isfinite(image)]
    if values.size == 0:
        return float("inf")
    span = np.quantile(values[::OTSU_SAMPLE_STEP], [OTSU_TAIL, 1.0 - OTSU_TAIL])
    low, high = float(span[0]), float(span[1])  # Python floats: the clip stays float32
    if not high > low:
        low, high = float(values.min()), float(values.max())
    if not high > low:
        return float("inf")
    clipped = np.clip(values, low, high)
    counts, edges = np.histogram(clipped, bins=OTSU_BINS, range=(low, high))
    counts = counts.astype(np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(counts * centres)
    mean_low = sum_low / np.maximum(weight_low, 1.0)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1.0)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


def foreground_ratio(image: FloatArray, grid: Grid, threshold: float) -> FloatArray:
    """Per patch, ``rows`` x ``cols``: the fraction of its pixels above ``threshold``."""
    h, w = grid.covered
    if grid.rows == 0 or grid.cols == 0:
        return np.zeros(grid.shape, dtype=np.float32)
    p = grid.patch_px
    above = image[:h, :w] > threshold
    per_patch = above.reshape(grid.rows, p, grid.cols, p).sum(axis=(1, 3), dtype=np.int64)
    ratios: FloatArray = (per_patch / float(p * p)).astype(np.float32)
    return ratios


def finite_patches(image: FloatArray, grid: Grid) -> BoolArray:
    """Per patch, ``rows`` x ``cols``: whether every one of its pixels is finite."""
    if grid.rows == 0 or grid.cols == 0:
        return np.zeros(grid.shape, dtype=np.bool_)
    h, w = grid.covered
    p = grid.patch_px
    finite = np.isfinite(image[:h, :w]).reshape(grid.rows, p, grid.cols, p)
    return np.asarray(finite.all(axis=(1, 3)), dtype=np.bool_)


def tile(image: FloatArray, grid: Grid, keep: BoolArray) -> FloatArray:
    """The patches where ``keep`` (``rows`` x ``cols``) is true, row-major: ``[N, 1, p, p]``."""
    if keep.shape != grid.shape:
        raise ValueError(f"keep has shape {keep.shape}, the grid is {grid.shape}")
    p = grid.patch_px
    h, w = grid.covered
    blocks = image[:h, :w].reshape(grid.rows, p, grid.cols, p).transpose(0, 2, 1, 3)
    patches: FloatArray = np.ascontiguousarray(blocks[keep][:, None], dtype=np.float32)
    return patches
