"""The well lattice of nanowell mode: fit it on a position's first frame, follow its drift.

This module owns finding where the wells are: the grid of PDMS walls (pitch,
phase and interior size per axis, ``fit_lattice``), the whole wells of a frame
with their SPEC 4 ids (``Lattice.layout``), the rigid stage drift between two
frames (``track_drift``) and the streaming stage that ties them together per
position (``WellLattice``). Pure functions over numpy arrays and frozen
dataclasses; no files, clocks or sockets.

Conventions (those of the simulator's ``wells.csv``): a box is the well
interior ``[y0:y1, x0:x1]`` in pixel indices, ``x1``/``y1`` exclusive; a well id
is ``"r{row:03d}c{col:03d}"`` with row and column counted from the first whole
well of the position's first frame (so ids never change as the stage drifts);
a drift ``(dx, dy)`` means a chip feature at ``(x, y)`` in the reference frame
is at ``(x + dx, y + dy)`` in the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from livecell.simulation.scene import (
    Well,
    well_id,
)  # SPEC 4 well vocabulary, shared with the simulator

__all__ = [
    "Lattice",
    "Well",
    "WellLattice",
    "WellLayout",
    "fit_lattice",
    "lattice_offset",
    "track_drift",
    "well_id",
]

FloatArray = npt.NDArray[np.float32]

_AXES = ((0, "y"), (1, "x"))

# Flat-field: the lamp field and vignetting vary over hundreds of pixels, walls over a few.
_FLAT_SIGMA_PX = 24.0
_FLAT_SHRINK = 8
# A wall edge must stand this many robust standard deviations above the profile's noise.
_MIN_EDGE_SNR = 6.0
# The smallest pitch looked for: below this, "wells" could not hold a cell.
_MIN_PITCH_PX = 16
# Per-edge search window around the edge the first estimate predicts, fraction of the pitch.
_SEARCH_FRACTION = 0.15
# Edges nearer the frame edge than this are left out: the profile's smoothing skews them.
_BORDER_PX = 4


@dataclass(frozen=True, slots=True)
class WellLayout:
    """The wells of one frame: the whole ones, and the boxes the frame edge cuts.

    ``skipped`` holds the unclipped boxes ``(x0, y0, x1, y1)`` of lattice cells
    that are only partly in the frame (or inside the edge margin): they are
    drawn on the chip but cannot be analysed, so they get no id.
    """

    wells: tuple[Well, ...]
    skipped: tuple[tuple[int, int, int, int], ...]


@dataclass(frozen=True, slots=True)
class Lattice:
    """A square-ish well grid, per axis ``(y, x)``, in the pixel frame of the fitted image.

    ``origin_px`` is the top-left corner of the interior of well ``r000c000``
    (continuous pixel-edge coordinates: an interior starting at index 13 has
    origin 13.0); well ``(row, col)`` has its interior at
    ``origin + (row, col) * pitch`` and ``well_size_px`` in extent.
    """

    pitch_px: tuple[float, float]
    origin_px: tuple[float, float]
    well_size_px: tuple[float, float]

    def layout(
        self,
        shape: tuple[int, ...],
        offset_px: tuple[float, float] = (0.0, 0.0),
        *,
        edge_margin_px: float = 0.0,
    ) -> WellLayout:
        """The wells of a frame of ``shape`` (``[H, W]``) drifted by ``offset_px`` (dx, dy).

        A well is whole when its box lies at least ``edge_margin_px`` inside the
        frame; the others that touch the frame are reported in ``skipped``.
        Rows and columns below 0 (cells before ``r000c000``) are never wells.
        """
        height, width = int(shape[0]), int(shape[1])
        dx, dy = offset_px
        rows = _spans(self, 0, height, dy, edge_margin_px)
        cols = _spans(self, 1, width, dx, edge_margin_px)
        wells: list[Well] = []
        skipped: list[tuple[int, int, int, int]] = []
        for r, (y0, y1, whole_y) in rows.items():
            for c, (x0, x1, whole_x) in cols.items():
                if whole_y and whole_x and r >= 0 and c >= 0:
                    wells.append(Well(well_id(r, c), r, c, x0, y0, x1, y1))
                else:
                    skipped.append((x0, y0, x1, y1))
        return WellLayout(tuple(wells), tuple(skipped))

    def wells(
        self,
        shape: tuple[int, ...],
        offset_px: tuple[float, float] = (0.0, 0.0),
        *,
        edge_margin_px: float = 0.0,
    ) -> list[Well]:
        """The whole wells of ``layout``, row-major."""
        return list(self.layout(shape, offset_px, edge_margin_px=edge_margin_px).wells)


def _spans(
    lattice: Lattice, axis: int, size: int, shift: float, margin: float
) -> dict[int, tuple[int, int, bool]]:
    """Lattice index -> (start, stop, whole) for every interior that overlaps ``[0, size)``."""
    pitch, origin, extent = (
        lattice.pitch_px[axis],
        lattice.origin_px[axis],
        lattice.well_size_px[axis],
    )
    start = origin + shift
    first = math.floor(-(start + extent) / pitch)
    last = math.ceil((size - start) / pitch)
    out: dict[int, tuple[int, int, bool]] = {}
    for k in range(first, last + 1):
        lo = round(start + k * pitch)
        hi = round(start + k * pitch + extent)
        if hi <= 0 or lo >= size:
            continue
        out[k] = (lo, hi, lo >= margin and hi <= size - margin)
    return out


def fit_lattice(image: npt.ArrayLike, *, edge_margin_px: float = 0.0) -> Lattice:
    """Fit the well grid of a phase-contrast frame ``[H, W]`` (any dtype).

    Walls run across the whole frame while cells and debris are local, so the
    median projections of the flat-fielded image along each axis keep the walls
    and lose the cells (robust to full, empty and partial wells alike). On each
    projection the pitch is the strongest autocorrelation lag of its gradient;
    each wall edge is then located to a fraction of a pixel and a straight line
    through all of them gives pitch and phase. The interior is the longer of the
    two gaps between a wall's edges (wells are wider than walls), whatever the
    contrast polarity. Well ``r000c000`` is the first whose interior starts at
    least ``edge_margin_px`` inside the frame.

    Raises ``ValueError`` when the image is not 2D, is blank, or shows no
    periodic wall pattern with at least two periods along each axis.
    """
    pixels = _as_image(image, "image")
    if float(pixels.max() - pixels.min()) <= 0.0:
        raise ValueError("fit_lattice: the image is blank (constant), no wells to find")
    flat = _flat_field(pixels)
    axes = [_fit_axis(_edge_profile(flat, axis), name, edge_margin_px) for axis, name in _AXES]
    (py, oy, sy), (px, ox, sx) = axes
    return Lattice(pitch_px=(py, px), origin_px=(oy, ox), well_size_px=(sy, sx))


def _as_image(image: npt.ArrayLike, what: str) -> FloatArray:
    pixels = np.asarray(image)
    if pixels.ndim != 2:
        raise ValueError(f"{what} must be a 2D [H, W] array, got shape {pixels.shape}")
    if min(pixels.shape) < 2 * _MIN_PITCH_PX:
        raise ValueError(f"{what} of shape {pixels.shape} is too small to hold two wells")
    out = np.asarray(pixels, dtype=np.float32)
    if not np.isfinite(out).all():
        raise ValueError(f"{what} has NaN or infinite pixels")
    return out


def _flat_field(pixels: FloatArray) -> FloatArray:
    """Relative contrast: the image over its own large-scale blur, minus one.

    The blur is taken on an 8x smaller copy (a 24 px Gaussian at full size
    costs 50 times more and the lamp field has no detail at that scale).
    """
    height, width = pixels.shape
    factor = max(1, min(_FLAT_SHRINK, height // 16, width // 16))
    small = cv2.resize(pixels, (width // factor, height // factor), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), _FLAT_SIGMA_PX / factor, borderType=cv2.BORDER_REFLECT)
    background = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    scale = float(np.abs(background).mean()) or 1.0
    floor = np.float32(1e-3 * scale)
    return np.asarray((pixels - background) / np.maximum(np.abs(background), floor), np.float32)


def _edge_profile(flat: FloatArray, axis: int) -> npt.NDArray[np.float64]:
    """The derivative along ``axis`` of the image's median projection onto that axis.

    Walls run across the whole frame, cells and debris do not: the median over
    the other axis keeps the walls and drops the rest.
    """
    # median along contiguous rows (twice as fast): the x profile reads the transposed image
    rows = flat if axis == 0 else cv2.transpose(flat)
    profile = np.median(rows, axis=1).astype(np.float64)
    smooth = cv2.GaussianBlur(profile.reshape(1, -1), (0, 0), 1.0, borderType=cv2.BORDER_REFLECT)
    grad: npt.NDArray[np.float64] = np.gradient(smooth.ravel())
    return grad


def _fit_axis(
    grad: npt.NDArray[np.float64], name: str, margin: float
) -> tuple[float, float, float]:
    """(pitch, origin, interior size) of one axis from its edge profile."""
    n = grad.size
    noise = 1.4826 * float(np.median(np.abs(grad - np.median(grad))))
    pitch0 = _pitch(grad, name)
    rising = _edges(grad, pitch0)
    falling = _edges(-grad, pitch0)
    if rising is None or falling is None:
        raise ValueError(
            f"fit_lattice: fewer than two wall edges along {name}; the frame must span "
            "at least two wells per axis"
        )
    (a, pitch_a, strength_a), (b, pitch_b, strength_b) = rising, falling
    if min(strength_a, strength_b) < _MIN_EDGE_SNR * max(noise, 1e-12):
        raise ValueError(
            f"fit_lattice: no periodic wall pattern along {name} (wall edges at "
            f"{min(strength_a, strength_b) / max(noise, 1e-12):.1f}x the noise, need "
            f"{_MIN_EDGE_SNR:g}x)"
        )
    pitch = 0.5 * (pitch_a + pitch_b)
    # a gradient peak at e lies between pixels e - 0.5 and e + 0.5: the boundary is e + 0.5
    a, b = a + 0.5, b + 0.5
    gap = (b - a) % pitch
    start, size = (a, gap) if gap >= pitch / 2 else (b, pitch - gap)
    origin = (start - margin) % pitch + margin
    if origin + size > n - margin:
        raise ValueError(f"fit_lattice: no whole well along {name} (pitch {pitch:.1f} px)")
    return pitch, origin, size


def _pitch(grad: npt.NDArray[np.float64], name: str) -> float:
    """The lag of the strongest autocorrelation peak of the edge profile (whole pixels)."""
    n = grad.size
    centred = grad - grad.mean()
    spectrum = np.fft.rfft(centred, 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), 2 * n)[: n // 2 + 1]
    if acf[0] <= 0:
        raise ValueError(f"fit_lattice: no periodic wall pattern along {name} (flat profile)")
    # the biased estimate falls with the lag, so the fundamental beats its multiples
    lo = _MIN_PITCH_PX
    if acf.size <= lo + 2:
        raise ValueError(f"fit_lattice: the frame is too short along {name} for two wells")
    lag = lo + int(np.argmax(acf[lo:]))
    if acf[lag] < 0.2 * acf[0] or lag >= acf.size - 1:
        raise ValueError(f"fit_lattice: no periodic wall pattern along {name}")
    return float(lag)


def _edges(
    strength: npt.NDArray[np.float64], pitch: float, *, fixed_pitch: bool = False
) -> tuple[float, float, float] | None:
    """Sub-pixel positions of one edge family: (phase, refined pitch, median peak height).

    With ``fixed_pitch`` only the phase is fitted: following a known lattice,
    an edge that sits oddly (a cell on the wall) then moves the answer by its
    share of the mean, never tilts it through a wrong pitch.
    """
    n = strength.size
    # coarse phase: the strongest response folded onto one period
    phases = np.arange(n) % pitch
    bins = np.floor(phases).astype(np.int64)
    folded = np.bincount(bins, weights=np.maximum(strength, 0.0), minlength=math.ceil(pitch))
    phase = float(np.argmax(folded))
    half = max(2, int(_SEARCH_FRACTION * pitch))
    ks, xs, heights = [], [], []
    for k in range(-1, int(n / pitch) + 2):
        centre = round(phase + k * pitch)
        # edges within the smoothing's reach of the frame edge are skewed by the border
        lo, hi = max(centre - half, _BORDER_PX), min(centre + half + 1, n - _BORDER_PX)
        if hi - lo < 3:
            continue
        i = lo + int(np.argmax(strength[lo:hi]))
        if i <= lo or i >= hi - 1:
            continue  # the peak is at the window's rim: cut by the frame edge
        left, mid, right = strength[i - 1], strength[i], strength[i + 1]
        curve = left - 2 * mid + right
        delta = 0.5 * (left - right) / curve if curve < 0 else 0.0
        ks.append(k)
        xs.append(i + float(np.clip(delta, -0.5, 0.5)))
        heights.append(mid)
    k_arr, x_arr = np.asarray(ks, np.float64), np.asarray(xs, np.float64)
    h_arr = np.asarray(heights, np.float64)
    # windows past the lattice's ends find noise, not edges: keep the strong peaks only
    keep = h_arr >= 0.4 * float(np.percentile(h_arr, 75)) if h_arr.size else h_arr > 0
    if keep.sum() < 2:
        return None
    # start from the median intercept at the coarse pitch (one bad edge cannot tilt it)
    slope, intercept = pitch, float(np.median(x_arr[keep] - pitch * k_arr[keep]))
    for _ in range(3):  # a cell on a wall can pull one edge: drop outliers, refit
        resid = np.abs(x_arr - (slope * k_arr + intercept))
        new = keep & (resid <= 2.0 + 0.02 * pitch)
        if new.sum() < 2:
            return None
        keep = new
        if fixed_pitch:
            intercept = float(np.mean(x_arr[keep] - pitch * k_arr[keep]))
        else:
            slope, intercept = (float(v) for v in np.polyfit(k_arr[keep], x_arr[keep], 1))
    return float(intercept % slope), float(slope), float(np.median(h_arr[keep]))


def lattice_offset(
    lattice: Lattice, image: npt.ArrayLike, *, prior_px: tuple[float, float] = (0.0, 0.0)
) -> tuple[float, float]:
    """Where ``lattice``'s walls are in ``image``: the drift ``(dx, dy)`` from the fitted frame.

    The wall edges are found again at the known pitch, exactly as in
    ``fit_lattice``; only walls count, so cells crawling across the frame do
    not pull the estimate (whole-frame phase correlation errs by up to a pixel
    on simulated TIMING frames, this by a few hundredths). A periodic lattice
    gives the drift modulo one pitch: the answer is the one nearest
    ``prior_px`` (the previous frame's drift), as a stage moves far less than
    half a well between frames. Raises ``ValueError`` when the walls are not
    found (a blank or badly defocused frame).
    """
    pixels = _as_image(image, "image")
    if float(pixels.max() - pixels.min()) <= 0.0:
        raise ValueError("lattice_offset: the image is blank (constant), no walls to follow")
    flat = _flat_field(pixels)
    shift = []
    for axis, name in _AXES:
        pitch, origin, size = (
            lattice.pitch_px[axis],
            lattice.origin_px[axis],
            lattice.well_size_px[axis],
        )
        grad = _edge_profile(flat, axis)
        found = []
        for strength in (grad, -grad):
            edges = _edges(strength, pitch, fixed_pitch=True)
            if edges is None:
                raise ValueError(f"lattice_offset: the walls along {name} are not found")
            found.append(edges[0] + 0.5)
        # either edge family may be the interior start; each gives the shift of the lattice
        candidates = [
            found[0] - origin,
            found[1] - (origin + size),
            found[1] - origin,
            found[0] - (origin + size),
        ]
        prior = prior_px[1 - axis]
        wrapped = [prior + (c - prior + pitch / 2) % pitch - pitch / 2 for c in candidates]
        # the consistent pair (start and end edge moved alike) is the lattice's
        pairs = [(wrapped[0], wrapped[1]), (wrapped[2], wrapped[3])]
        a, b = min(pairs, key=lambda ab: abs(ab[0] - ab[1]))
        shift.append(0.5 * (a + b))
    return shift[1], shift[0]


def track_drift(reference: npt.ArrayLike, image: npt.ArrayLike) -> tuple[float, float]:
    """Rigid shift ``(dx, dy)`` of ``image`` relative to ``reference``, sub-pixel, in px.

    Phase correlation (half-whitened cross-power spectrum) of the flat-fielded
    frames under a Hann window: the flat-field takes out the lamp field, which
    is fixed to the camera and would pull the answer towards zero; the window
    stops the frame edges from correlating. The integer peak is refined by a
    16x upsampled DFT of the spectrum around it (Guizar-Sicairos et al. 2008):
    OpenCV's ``phaseCorrelate`` (full whitening, a 5x5 centroid) errs by up to
    1 px on the same synthetic shifts where this stays under 0.1 px. A shift is
    only defined up to a whole pitch on a periodic chip, so drift must stay
    under half a pitch. On TIMING frames crawling cells pull it by up to half a
    pixel: ``lattice_offset`` (walls only) is the better estimate there.
    """
    ref = _as_image(reference, "reference")
    img = _as_image(image, "image")
    if ref.shape != img.shape:
        raise ValueError(f"track_drift: shapes differ, {ref.shape} and {img.shape}")
    if float(ref.max() - ref.min()) <= 0.0 or float(img.max() - img.min()) <= 0.0:
        raise ValueError("track_drift: an image is blank (constant), nothing to register")
    window = cv2.createHanningWindow((ref.shape[1], ref.shape[0]), cv2.CV_32F)
    fa = np.fft.rfft2(_flat_field(ref) * window)
    fb = np.fft.rfft2(_flat_field(img) * window)
    cross = fb * np.conj(fa)
    # half whitening: full phase correlation lets bins with almost no signal (the finest
    # scales, the window's own leakage) vote as loud as the walls and biases sub-pixel
    # peaks towards zero by up to a pixel; plain correlation is too broad on the lamp field
    cross /= np.sqrt(np.maximum(np.abs(cross), 1e-12))
    height, width = ref.shape
    corr = np.fft.irfft2(cross, s=(height, width))
    iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
    dy = float(iy - height if iy > height // 2 else iy)
    dx = float(ix - width if ix > width // 2 else ix)
    return _refine_peak(cross, (height, width), dx, dy)


_UPSAMPLE = 16


def _refine_peak(
    cross: npt.NDArray[np.complex128], shape: tuple[int, int], dx: float, dy: float
) -> tuple[float, float]:
    """The correlation peak near (dx, dy) to 1/16 px, from the half spectrum ``cross``."""
    height, width = shape
    steps = np.arange(-_UPSAMPLE, _UPSAMPLE + 1) / _UPSAMPLE  # +-1 px around the peak
    fy = np.fft.fftfreq(height)
    fx = np.fft.rfftfreq(width)
    # the inverse real DFT on a fine grid: full weight for the bins a half spectrum holds once
    weight = np.full(fx.size, 2.0)
    weight[0] = 1.0
    if width % 2 == 0:
        weight[-1] = 1.0
    rows = np.exp(2j * np.pi * np.outer(dy + steps, fy))
    cols = np.exp(2j * np.pi * np.outer(fx, dx + steps)) * weight[:, None]
    fine = (rows @ cross @ cols).real
    j, i = (int(v) for v in np.unravel_index(int(np.argmax(fine)), fine.shape))
    return dx + float(steps[i]) + _parabola(fine[j, :], i), dy + float(steps[j]) + _parabola(
        fine[:, i], j
    )


def _parabola(values: npt.NDArray[np.float64], i: int) -> float:
    """Sub-sample offset of a peak at ``i`` from its neighbours, in px (0 at the rim)."""
    if i <= 0 or i >= values.size - 1:
        return 0.0
    left, mid, right = values[i - 1], values[i], values[i + 1]
    curve = left - 2 * mid + right
    if curve >= 0:
        return 0.0
    return float(np.clip(0.5 * (left - right) / curve, -0.5, 0.5)) / _UPSAMPLE


class WellLattice:
    """The wells of one position, frame after frame: fit on the first, then follow the drift.

    Each frame's drift is measured against the lattice fitted on the first
    frame (``lattice_offset``), never chained frame to frame: chained estimates
    add their errors up as a random walk over hundreds of frames, while the
    walls are fixed to the chip, so the first fit stays the right reference
    for the whole run. The previous frame's drift only picks which whole pitch
    the answer lies in. Should the walls be lost (a defocused frame), phase
    correlation against the first frame (``track_drift``) stands in.

    The position's wells are those whole on the first frame at least
    ``edge_margin_px`` inside it; give the stage's drift bound there (the
    simulator's ``stage_drift_max_px``) to number wells as the simulator does,
    which leaves out wells that drift could cut. A well of that set that drift
    pushes over the frame edge later is skipped for that frame (``skipped``),
    and keeps its id. One instance per position; it holds the first frame.
    """

    def __init__(self, *, edge_margin_px: float = 0.0) -> None:
        self.edge_margin_px = edge_margin_px
        self.lattice: Lattice | None = None
        self.offset_px: tuple[float, float] = (0.0, 0.0)
        self.skipped: tuple[tuple[int, int, int, int], ...] = ()
        self._reference: FloatArray | None = None
        self._shape: tuple[int, int] = (0, 0)
        self._members: frozenset[str] | None = None

    def update(self, image: npt.ArrayLike, t: int) -> list[Well]:
        """The whole wells of frame ``t`` of this position (``[H, W]``), ids as at the first."""
        pixels = _as_image(image, "image")
        if self.lattice is None or self._reference is None:
            self.lattice = fit_lattice(pixels, edge_margin_px=self.edge_margin_px)
            self._reference = pixels.copy()
            self._shape = (int(pixels.shape[0]), int(pixels.shape[1]))
            self.offset_px = (0.0, 0.0)
        else:
            if pixels.shape != self._shape:
                raise ValueError(
                    f"frame t={t} has shape {pixels.shape}, the position's first "
                    f"frame {self._shape}"
                )
            try:
                self.offset_px = lattice_offset(self.lattice, pixels, prior_px=self.offset_px)
            except ValueError:
                # walls lost (defocus): the whole frame still registers against the first
                self.offset_px = track_drift(self._reference, pixels)
        layout = self.lattice.layout(self._shape, self.offset_px)
        if self._members is None:
            # the position's wells are fixed on its first frame, margin included
            first = self.lattice.layout(
                self._shape, self.offset_px, edge_margin_px=self.edge_margin_px
            )
            self._members = frozenset(w.well for w in first.wells)
        wells = [w for w in layout.wells if w.well in self._members]
        self.skipped = layout.skipped + tuple(
            (w.x0, w.y0, w.x1, w.y1) for w in layout.wells if w.well not in self._members
        )
        return wells
