"""Phase-contrast and fluorescence rendering: pure functions over arrays.

The phase-contrast model is the usual linear one (a phase ring passes part of
the scattered light's low frequencies): the image is ``1 - k * (phi - G * phi)``
for an optical-thickness map ``phi`` and a Gaussian ``G`` of width
``halo_sigma_px``. Objects come out dark with a bright halo around their edges,
and the middle of a large flat object shades off towards the background. Each
cell is rendered in its own bounding box and added into a full-frame contrast
map; the well walls and debris are rendered once per position into a padded
map that is shifted for stage drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from livecell.simulation.nanowell_params import NanowellParams

FLUORESCENCE_CHANNELS = ("annexin_v", "pi", "effector_label", "target_label")
FLUORESCENCE_PEAK_ELECTRONS = 2500.0  # a stained cell's brightest pixels over the floor
OUTLINE_SAMPLES = 720  # angular resolution of a cell outline (0.5 degree)
_THETA = np.linspace(0.0, 2 * np.pi, OUTLINE_SAMPLES, endpoint=False)
_COS = np.cos(_THETA).astype(np.float32)
_SIN = np.sin(_THETA).astype(np.float32)


@dataclass(frozen=True, slots=True)
class Bump:
    """A narrow radial bulge of the outline: leading edge, uropod or bleb."""

    angle: float
    amplitude: float  # fraction of the radius
    kappa: float  # von Mises concentration: larger is narrower


@dataclass(frozen=True, eq=False, slots=True)
class CellLook:
    """Everything the renderer needs about one cell at one frame, in image pixels."""

    track: int
    x_px: float
    y_px: float
    radius_px: float
    harmonics: np.ndarray  # (K, 2): cos and sin amplitudes of modes 2..K+1, fraction of radius
    bumps: tuple[Bump, ...]
    max_extent_px: float  # hard cap on the outline radius
    thickness: float  # optical thickness (dark body, halo)
    glow: float  # phase-bright component of rounded, dense cells
    textures: tuple[np.ndarray, ...]  # shared float32 banks of unit-sd texture
    tex_offsets: tuple[tuple[int, int], ...]  # (row, col) in each bank under the cell centre
    tex_weights: tuple[float, ...]  # how much of each bank the cytoplasm shows
    texture_amp: float
    nucleus_dx: float  # nucleus centre offset, fraction of the radius
    nucleus_dy: float
    nucleus_amp: float
    defocus_px: float  # extra blur of this cell (its own height in the well)
    clip: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive): pixels the mask may use
    label_level: float  # effector or target dye, 0 once the cell has lysed
    annexin: float  # Annexin V signal, 0 before marker
    pi: float  # propidium iodide signal, 0 before rupture
    is_effector: bool


@dataclass(frozen=True, eq=False, slots=True)
class RenderedCell:
    track: int
    mask_y0: int
    mask_x0: int
    mask: np.ndarray  # bool, tight box, already clipped to the well and the frame
    box_y0: int
    box_x0: int
    contrast: np.ndarray  # float32 contribution to the contrast map, padded for the halo
    texture: np.ndarray  # float32 cytoplasm texture under the mask box (for fluorescence)


@dataclass(frozen=True, eq=False, slots=True)
class Background:
    """Per-position static field: walls and debris (chip frame, padded) and the lamp."""

    contrast: np.ndarray  # float32 (S + 2 pad, S + 2 pad) in chip coordinates
    pad: int
    electrons: np.ndarray  # float32 (S, S): background photo-electrons incl. illumination


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian random field with unit standard deviation (float32)."""
    white = rng.standard_normal(shape, dtype=np.float32)
    field: np.ndarray = cv2.GaussianBlur(white, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    sd = float(field.std())
    return field / sd if sd > 0 else field


def halo(phi: np.ndarray, sigma: float) -> np.ndarray:
    """``phi - G_sigma * phi``: the part of the phase the ring does not pass."""
    out: np.ndarray = phi - cv2.GaussianBlur(phi, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    return out


def _spans(origin: float, pitch: float, wall: float, size: int, pad: int) -> np.ndarray:
    """1D profile over ``size + 2 pad`` samples: 1 inside well interiors, 0 on walls."""
    coords = np.arange(size + 2 * pad, dtype=np.float32) - pad
    local = np.mod(coords - origin, pitch)
    inside = (local >= wall / 2) & (local < pitch - wall / 2)
    profile = inside.astype(np.float32)
    # walls have sloped sides: soften the edge a little
    soft: np.ndarray = cv2.GaussianBlur(profile.reshape(1, -1), (0, 0), 1.2)
    return soft.ravel()


def build_background(
    p: NanowellParams,
    origin_xy: tuple[float, float],
    wells: list[tuple[int, int, int, int]],
    rng: np.random.Generator,
) -> Background:
    """Walls, well floors, debris and illumination for one position."""
    size = p.frame_size_px
    pad = math.ceil(p.stage_drift_max_px) + 2
    in_x = _spans(origin_xy[0], p.pitch_px, p.wall_px, size, pad)
    in_y = _spans(origin_xy[1], p.pitch_px, p.wall_px, size, pad)
    floor = np.outer(in_y, in_x)
    wall = 1.0 - floor
    phi = 1.6 * wall
    full = size + 2 * pad
    # debris: small dense specks on well floors, fixed to the chip
    n_debris = rng.poisson(p.debris_per_well * max(len(wells), 1))
    specks = np.zeros((full, full), np.float32)
    if n_debris and wells:
        which = rng.integers(0, len(wells), n_debris)
        for i, k in enumerate(which):
            x0, y0, x1, y1 = wells[k]
            cx = rng.uniform(x0, x1) + pad
            cy = rng.uniform(y0, y1) + pad
            r = rng.uniform(0.8, 2.2)
            amp = rng.uniform(0.3, 1.2) * (1 if i % 4 else -0.5)
            _add_blob(specks, cx, cy, r, amp)
    phi += specks
    contrast = -p.wall_contrast * halo(phi, p.halo_sigma_px)
    # the PDMS wall tops are a little darker and mottled; each well floor its own level
    contrast -= 0.06 * wall
    contrast += 0.03 * wall * smooth_noise(rng, (full, full), 6.0)
    contrast += 0.012 * floor * smooth_noise(rng, (full, full), 40.0)
    electrons = p.background_electrons * _illumination(p, rng)
    return Background(contrast.astype(np.float32), pad, electrons)


def _add_blob(canvas: np.ndarray, cx: float, cy: float, r: float, amp: float) -> None:
    h = math.ceil(3 * r) + 1
    x0, y0 = max(int(cx) - h, 0), max(int(cy) - h, 0)
    x1, y1 = min(int(cx) + h + 1, canvas.shape[1]), min(int(cy) + h + 1, canvas.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
    canvas[y0:y1, x0:x1] += amp * np.exp(-(xs * xs + ys * ys) / (2 * r * r))


def _illumination(p: NanowellParams, rng: np.random.Generator) -> np.ndarray:
    """A smooth lamp field with vignetting, mean 1, peak-to-peak about the unevenness."""
    size = p.frame_size_px
    coarse = rng.standard_normal((5, 5)).astype(np.float32)
    field = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.ogrid[:size, :size]
    cx, cy = rng.uniform(0.35, 0.65, 2) * size
    r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (0.5 * size) ** 2
    field = field - float(field.min())
    span = float(field.max()) or 1.0
    lamp = 0.6 * field / span - 0.4 * r2.astype(np.float32)
    lamp -= float(lamp.mean())
    span = float(lamp.max() - lamp.min()) or 1.0
    out: np.ndarray = (1.0 + p.illumination_unevenness * lamp / span).astype(np.float32)
    return out


def outline_radius(look: CellLook, cos_t: np.ndarray, sin_t: np.ndarray) -> np.ndarray:
    """Outline radius (px) at the angles given by their cosines and sines."""
    rel = np.ones_like(cos_t)
    ck, sk = cos_t, sin_t
    c1, s1 = cos_t, sin_t
    for a, b in look.harmonics.tolist():  # Python floats keep float32 arrays float32
        ck, sk = ck * c1 - sk * s1, sk * c1 + ck * s1  # angle multiples: 2, 3, ...
        rel += a * ck + b * sk
    for bump in look.bumps:
        cb, sb = math.cos(bump.angle), math.sin(bump.angle)
        rel += bump.amplitude * np.exp(bump.kappa * (cos_t * cb + sin_t * sb - 1.0))
    np.clip(rel, 0.45, None, out=rel)
    rel *= look.radius_px
    out: np.ndarray = np.minimum(rel, look.max_extent_px)
    return out


def outline_table(look: CellLook) -> np.ndarray:
    """Outline radius at ``OUTLINE_SAMPLES`` angles from 0 (x axis) towards +y."""
    return outline_radius(look, _COS, _SIN)


def extent_px(look: CellLook) -> float:
    """The largest outline radius: no mask pixel lies farther from the centre."""
    return float(outline_table(look).max())


def render_cell(look: CellLook, p: NanowellParams, frame_size: int) -> RenderedCell | None:
    """Rasterise one cell: its mask (clipped to ``look.clip``) and contrast contribution."""
    ext = look.max_extent_px
    pad = math.ceil(3 * (p.halo_sigma_px + look.defocus_px)) + 1
    bx0 = math.floor(look.x_px - ext) - pad
    by0 = math.floor(look.y_px - ext) - pad
    bx1 = math.ceil(look.x_px + ext) + pad + 1
    by1 = math.ceil(look.y_px + ext) + pad + 1
    dx = (np.arange(bx0, bx1, dtype=np.float32) - np.float32(look.x_px))[None, :]
    dy = (np.arange(by0, by1, dtype=np.float32) - np.float32(look.y_px))[:, None]
    shape = (dy.shape[0], dx.shape[1])
    d, angle = cv2.cartToPolar(
        np.ascontiguousarray(np.broadcast_to(dx, shape)),
        np.ascontiguousarray(np.broadcast_to(dy, shape)),
    )
    index = (angle * np.float32(OUTLINE_SAMPLES / (2 * np.pi))).astype(np.int32)
    np.minimum(index, OUTLINE_SAMPLES - 1, out=index)
    rho = d / outline_table(look)[index]
    inside = rho < 1.0
    cx0, cy0, cx1, cy1 = look.clip
    cx0, cy0 = max(cx0, 0), max(cy0, 0)
    cx1, cy1 = min(cx1, frame_size), min(cy1, frame_size)
    inside[:, : max(cx0 - bx0, 0)] = False
    inside[: max(cy0 - by0, 0), :] = False
    if cx1 - bx0 < inside.shape[1]:
        inside[:, max(cx1 - bx0, 0) :] = False
    if cy1 - by0 < inside.shape[0]:
        inside[max(cy1 - by0, 0) :, :] = False
    rows = np.flatnonzero(inside.any(axis=1))
    cols = np.flatnonzero(inside.any(axis=0))
    if rows.size == 0:
        return None
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    profile = np.sqrt(np.clip(1.0 - rho * rho, 0.0, 1.0)) * inside
    tex = _texture(look, by0 + r0, bx0 + c0, (r1 - r0, c1 - c0))
    phi = profile.copy()
    phi[r0:r1, c0:c1] *= 1.0 + np.float32(look.texture_amp) * tex
    if look.nucleus_amp:
        nx = dx - np.float32(look.nucleus_dx * look.radius_px)
        ny = dy - np.float32(look.nucleus_dy * look.radius_px)
        s2 = np.float32(2 * (0.42 * look.radius_px) ** 2)
        phi += np.float32(look.nucleus_amp) * np.exp(-(nx * nx + ny * ny) / s2) * inside
    phi *= np.float32(look.thickness)
    contrast: np.ndarray = np.float32(-p.cell_contrast) * halo(phi, p.halo_sigma_px)
    if look.glow:
        contrast += np.float32(look.glow) * profile * profile
    if look.defocus_px > 0.25:
        contrast = cv2.GaussianBlur(contrast, (0, 0), look.defocus_px)
    return RenderedCell(
        track=look.track,
        mask_y0=by0 + r0,
        mask_x0=bx0 + c0,
        mask=inside[r0:r1, c0:c1].copy(),
        box_y0=by0,
        box_x0=bx0,
        contrast=contrast.astype(np.float32, copy=False),
        texture=tex,
    )


def _texture(look: CellLook, y0: int, x0: int, shape: tuple[int, int]) -> np.ndarray:
    """The cell's texture over image rows ``y0:`` and columns ``x0:`` (it moves with the cell)."""
    h, w = shape
    out = np.zeros(shape, np.float32)
    cy, cx = round(look.y_px), round(look.x_px)
    for bank, (oy, ox), weight in zip(
        look.textures, look.tex_offsets, look.tex_weights, strict=True
    ):
        if weight == 0.0:
            continue
        ty, tx = oy + y0 - cy, ox + x0 - cx
        if ty >= 0 and tx >= 0 and ty + h <= bank.shape[0] and tx + w <= bank.shape[1]:
            out += np.float32(weight) * bank[ty : ty + h, tx : tx + w]
        else:  # a cell larger than the bank margin: wrap around
            ys = (np.arange(h) + ty) % bank.shape[0]
            xs = (np.arange(w) + tx) % bank.shape[1]
            out += np.float32(weight) * bank[np.ix_(ys, xs)]
    return out


def add_into(canvas: np.ndarray, y0: int, x0: int, patch: np.ndarray) -> None:
    """``canvas[y0:, x0:] += patch`` where they overlap."""
    h, w = patch.shape
    cy0, cx0 = max(y0, 0), max(x0, 0)
    cy1, cx1 = min(y0 + h, canvas.shape[0]), min(x0 + w, canvas.shape[1])
    if cy0 >= cy1 or cx0 >= cx1:
        return
    canvas[cy0:cy1, cx0:cx1] += patch[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]


class Buffers:
    """Full-frame float32 work arrays, reused frame after frame (fresh pages are slow)."""

    def __init__(self, size: int) -> None:
        self.a = np.zeros((size, size), np.float32)
        self.b = np.zeros((size, size), np.float32)
        self.c = np.zeros((size, size), np.float32)


def render_phase(
    bg: Background,
    cells: list[RenderedCell],
    *,
    offset_xy: tuple[float, float],
    focus_px: float,
    lamp: float,
    buffers: Buffers,
    p: NanowellParams,
    rng: np.random.Generator,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The phase-contrast frame (uint16): drifted background, cells, defocus, lamp, camera."""
    size = p.frame_size_px
    dx, dy = offset_xy
    m = np.array([[1.0, 0.0, bg.pad - dx], [0.0, 1.0, bg.pad - dy]], dtype=np.float64)
    contrast = buffers.a
    cv2.warpAffine(
        bg.contrast,
        m,
        (size, size),
        dst=contrast,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    for cell in cells:
        add_into(contrast, cell.box_y0, cell.box_x0, cell.contrast)
    if focus_px > 0.25:
        cv2.GaussianBlur(contrast, (0, 0), focus_px, dst=buffers.b)
        contrast = buffers.b
    # expected photo-electrons: the lamp field times 1 + contrast
    contrast += np.float32(1.0)
    cv2.multiply(bg.electrons, contrast, dst=buffers.c, scale=lamp)
    return camera(buffers.c, p, rng, spare=(buffers.a, buffers.b), out=out)


def gaussian_noise(rng: np.random.Generator, out: np.ndarray) -> None:
    """Fill ``out`` (float32) with standard normal variates, deterministically from ``rng``.

    OpenCV's generator (about five times faster than NumPy's normal sampler on a
    4-megapixel frame) is seeded from ``rng`` on every call; it is per thread,
    so this touches no other thread's state.
    """
    cv2.setRNGSeed(int(rng.integers(0, 2**31 - 1)))
    cv2.randn(out, np.zeros(1), np.ones(1))


def camera(
    signal: np.ndarray,
    p: NanowellParams,
    rng: np.random.Generator,
    *,
    spare: tuple[np.ndarray, np.ndarray],
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Shot and read noise on expected photo-electrons, then uint16 ADU (into ``out``).

    ``signal`` and the two ``spare`` arrays are float32 work arrays of the
    frame's shape, all overwritten. Shot noise is the Gaussian limit of Poisson
    (the well floor holds thousands of electrons), drawn together with the read
    noise as one normal variate per pixel.
    """
    sd, noise = spare
    np.maximum(signal, np.float32(0.0), out=signal)
    np.add(signal, np.float32(p.read_noise_electrons**2), out=sd)
    np.sqrt(sd, out=sd)
    gaussian_noise(rng, noise)
    noise *= sd
    signal += noise
    signal *= np.float32(p.adu_per_electron)
    signal += np.float32(p.camera_offset_adu)
    np.clip(signal, np.float32(0), np.float32(65535), out=signal)
    if out is None:
        out = np.empty(signal.shape, np.uint16)
    out[...] = signal
    return out


def render_fluorescence(
    looks: dict[int, CellLook],
    rendered: list[RenderedCell],
    electrons: np.ndarray,
    *,
    out: np.ndarray,
    buffers: Buffers,
    p: NanowellParams,
    rng: np.random.Generator,
) -> None:
    """Annexin V, PI, effector label and target label images (uint16) into ``out[0..3]``.

    Annexin V rims the membrane (with a dimmer fill); PI fills the nucleus; the
    two cell dyes fill the cytoplasm with puncta. Each over a dim floor lit like
    the phase image (Annexin V sits in the medium, so its floor is brighter).
    """
    kernel = np.ones((3, 3), np.uint8)
    pad = 6
    signal = buffers.c
    for k in range(len(FLUORESCENCE_CHANNELS)):
        floor = (0.06 if k == 0 else 0.03) * p.background_electrons
        np.multiply(electrons, np.float32(floor / p.background_electrons), out=signal)
        for cell in rendered:
            look = looks[cell.track]
            level = (look.annexin, look.pi, *_dyes(look))[k]
            if level <= 0:
                continue
            mm = np.pad(cell.mask.astype(np.float32), pad)
            y0, x0 = cell.mask_y0 - pad, cell.mask_x0 - pad
            if k == 0:
                eroded = cv2.erode(mm, kernel, iterations=2)
                stain = (mm - eroded) + 0.25 * eroded
            elif k == 1:
                h, w = mm.shape
                ys = np.arange(h, dtype=np.float32)[:, None] + np.float32(
                    y0 - look.y_px - look.nucleus_dy * look.radius_px
                )
                xs = np.arange(w, dtype=np.float32)[None, :] + np.float32(
                    x0 - look.x_px - look.nucleus_dx * look.radius_px
                )
                spread = np.float32(2 * (0.45 * look.radius_px) ** 2)
                stain = np.exp(-(xs * xs + ys * ys) / spread) * mm
            else:
                stain = mm * (1.0 + 0.5 * np.abs(np.pad(cell.texture, pad)))
            blurred = cv2.GaussianBlur(stain, (0, 0), 1.3)
            add_into(signal, y0, x0, np.float32(level * FLUORESCENCE_PEAK_ELECTRONS) * blurred)
        camera(signal, p, rng, spare=(buffers.a, buffers.b), out=out[k])


def _dyes(look: CellLook) -> tuple[float, float]:
    """(effector dye, target dye) of a cell."""
    return (look.label_level, 0.0) if look.is_effector else (0.0, look.label_level)
