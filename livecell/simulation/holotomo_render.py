"""Refractive-index tomograms from cells: column layers, labels, volume, background, noise.

Each cell is rendered in its bounding box as up to three *layers* per pixel
column, each a z interval ``[lo, hi)`` in slices (fractional, so the voxels at
both ends are partly filled) carrying an RI increment over the medium:

- body: cytoplasm from the coverslip up to the cell's height there (a flattened
  dome with a thin lamella, higher over the nucleus), or a sphere resting on the
  glass (blebs, apoptotic bodies, debris), whichever reaches higher;
- nucleus: a band through the middle of the column over the nucleus;
- spots: small spheres in the middle of the column (nucleoli, lipid droplets).

Where cells overlap in 2D, the column belongs to the cell whose top is highest
(``compose``: labels, top wins). ``fill_volume`` writes every owned layer as a
difference along z at its two ends (four scatters per pixel) and one running sum
over z turns the differences into filled intervals, so the cost is a few passes
over the volume plus the cells' pixels, whatever their shapes. Noise comes from a
precomputed block placed at random offsets and flips; the 2D background (medium,
slow variation, drifting fringes, dark halos around cells) is added to every
slice. Everything is float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from livecell.simulation.holotomo_cells import HARMONICS, RAGGED_HARMONICS, HeLaCell, Look

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

OUTLINE_SAMPLES = 256  # angles at which a cell's outline radius is tabulated
TEXTURE_SIDE = 1024


@dataclass(frozen=True, slots=True)
class Optics:
    size_px: int
    z_slices: int
    pixel_size_um: float
    z_step_um: float
    glass_slice: float

    @property
    def top_slice(self) -> float:
        """Layers end below the last slice, so the top of the stack is always medium."""
        return float(self.z_slices - 1)


@dataclass(frozen=True, slots=True)
class Layer:
    index: npt.NDArray[np.intp]  # flat index into the cell's bounding box
    lo: F32  # slices
    hi: F32
    delta: F32  # RI increment


@dataclass(frozen=True, slots=True)
class CellRender:
    track: int
    x: float  # the cell's centre in the field
    y: float
    y0: int  # the bounding box's corner in the field
    x0: int
    top: F32  # (h, w) top of the body layer in slices, 0 where the cell is absent
    layers: tuple[Layer, ...]

    @property
    def box(self) -> tuple[slice, slice]:
        h, w = self.top.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)


# ---------------------------------------------------------------- shared random blocks


def make_texture(rng: np.random.Generator, side: int = TEXTURE_SIDE) -> F32:
    """Periodic band-passed noise (organelle granularity), unit sd, clipped to +-2.5."""
    spectrum = np.fft.rfft2(rng.standard_normal((side, side)))
    fy = np.fft.fftfreq(side)[:, None]
    fx = np.fft.rfftfreq(side)[None, :]
    f2 = fy * fy + fx * fx
    gain = np.exp(-2 * math.pi**2 * 1.5**2 * f2) + 7.4 * np.exp(-2 * math.pi**2 * 6.0**2 * f2)
    tex = np.fft.irfft2(spectrum * gain, s=(side, side))
    tex -= tex.mean()
    tex /= max(float(tex.std()), 1e-9)
    return np.clip(tex, -2.5, 2.5).astype(np.float32)


class NoiseBlock:
    """Spatially correlated reconstruction noise, generated once and reused at random offsets."""

    def __init__(self, rng: np.random.Generator, *, z: int, tile: int, sd_ri: float) -> None:
        self.tile = tile
        side = tile + max(64, tile // 4)
        block = rng.standard_normal((z, side, side), dtype=np.float32)
        for k in range(z):
            block[k] = cv2.GaussianBlur(block[k], (0, 0), 0.7)
        block *= np.float32(sd_ri / max(float(block.std()), 1e-9))
        self.block = block

    def add_to(self, volume: F32, rng: np.random.Generator) -> None:
        _z, height, width = volume.shape
        side = self.block.shape[1]
        for ty in range(0, height, self.tile):
            for tx in range(0, width, self.tile):
                h, w = min(self.tile, height - ty), min(self.tile, width - tx)
                oy, ox = (int(v) for v in rng.integers(0, [side - h + 1, side - w + 1]))
                sz, sy, sx = (1 if f else -1 for f in rng.random(3) < 0.5)
                volume[:, ty : ty + h, tx : tx + w] += self.block[::sz, oy : oy + h, ox : ox + w][
                    :, ::sy, ::sx
                ]


def slow_field(rng: np.random.Generator, size: int, amplitude: float) -> F32:
    """A smooth background variation (uneven reconstruction), fixed for a position."""
    coarse = rng.uniform(-1.0, 1.0, (6, 6)).astype(np.float32)
    return (cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC) * amplitude).astype(
        np.float32
    )


def background(
    labels: npt.NDArray[np.int32],
    *,
    base: F32,
    ripple_ri: float,
    ripple_wave: tuple[float, float],
    ripple_phase: float,
    halo_ri: float,
) -> F32:
    """The 2D background: ``base`` (medium + slow field) + fringes + dark halos outside cells."""
    size = labels.shape[0]
    coords = np.arange(size, dtype=np.float32)
    ax = coords * np.float32(ripple_wave[0]) + np.float32(ripple_phase)
    ay = coords * np.float32(ripple_wave[1])
    amp = np.float32(ripple_ri)
    bg: F32 = np.multiply.outer(np.cos(ay) * amp, np.sin(ax))
    bg += np.multiply.outer(np.sin(ay) * amp, np.cos(ax))
    bg += base
    if halo_ri > 0 and size >= 16:
        fg = (labels > 0).astype(np.float32)
        small = cv2.resize(fg, (size // 4, size // 4), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), 2.5)
        near = np.asarray(
            cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR), dtype=np.float32
        )
        near *= 1.0 - fg
        bg -= np.float32(halo_ri) * near
    return bg


# ---------------------------------------------------------------- one cell


def _outline_table(cell: HeLaCell, look: Look) -> F32:
    theta = np.linspace(0, 2 * math.pi, OUTLINE_SAMPLES, endpoint=False)
    r = 1.0 + look.irregularity * (
        cell.harmonic_amp @ np.cos(np.outer(HARMONICS, theta) + cell.harmonic_phase[:, None])
    )
    if look.ragged > 0:
        r += look.ragged * (
            cell.ragged_amp @ np.cos(np.outer(RAGGED_HARMONICS, theta) + cell.ragged_phase[:, None])
        )
    return np.clip(r, 0.45, 1.8).astype(np.float32)


def _splat(
    centers: npt.NDArray[np.float64],
    radii: npt.NDArray[np.float64],
    y0: int,
    x0: int,
    shape: tuple[int, int],
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], F32]:
    """Pixels inside each disc: (flat index in the box, disc index, sqrt(1 - d^2 / r^2))."""
    if len(radii) == 0:
        return np.empty(0, np.intp), np.empty(0, np.intp), np.empty(0, np.float32)
    reach = math.ceil(float(radii.max())) + 1
    off = np.arange(-reach, reach + 1)
    cy = np.round(centers[:, 1]).astype(np.intp)
    cx = np.round(centers[:, 0]).astype(np.intp)
    ys = (cy[:, None, None] + off[None, :, None]) + np.zeros((1, 1, off.size), np.intp)
    xs = (cx[:, None, None] + off[None, None, :]) + np.zeros((1, off.size, 1), np.intp)
    d2 = (ys - centers[:, 1, None, None]) ** 2 + (xs - centers[:, 0, None, None]) ** 2
    r2 = (radii**2)[:, None, None]
    ly, lx = ys - y0, xs - x0
    inside = (d2 < r2) & (ly >= 0) & (ly < shape[0]) & (lx >= 0) & (lx < shape[1])
    which = np.nonzero(inside)[0]
    flat = (ly * shape[1] + lx)[inside]
    frac = np.sqrt(1.0 - d2[inside] / r2.reshape(-1)[which]).astype(np.float32)
    return flat, which, frac


def _first_per_pixel(flat: npt.NDArray[np.intp], key: F32) -> npt.NDArray[np.intp]:
    """Positions (into ``flat``) keeping, for each pixel, the entry with the largest ``key``."""
    order = np.lexsort((-key, flat))
    _, first = np.unique(flat[order], return_index=True)
    return order[first]


def render_cell(cell: HeLaCell, look: Look, optics: Optics, texture: F32) -> CellRender | None:
    """The cell's layers in its bounding box (None when the box misses the field)."""
    z_per_px = optics.pixel_size_um / optics.z_step_um
    glass, top_slice = optics.glass_slice, optics.top_slice
    radius = cell.radius_px * look.radius_scale
    body_radius = radius * (1.0 - 0.92 * look.fragment)
    a = body_radius / math.sqrt(cell.aspect)
    b = body_radius * math.sqrt(cell.aspect)
    cos_t, sin_t = math.cos(cell.angle_rad), math.sin(cell.angle_rad)
    table = _outline_table(cell, look)

    def to_world(
        px: npt.NDArray[np.float64], py: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        return np.column_stack([cell.x + px * cos_t - py * sin_t, cell.y + px * sin_t + py * cos_t])

    def on_outline(
        theta: npt.NDArray[np.float64], rho: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        idx = (np.mod(theta, 2 * math.pi) * (OUTLINE_SAMPLES / (2 * math.pi))).astype(np.intp)
        rl = table[np.minimum(idx, OUTLINE_SAMPLES - 1)] * rho
        return to_world(rl * a * np.cos(theta), rl * b * np.sin(theta))

    # spheres joining the body layer: blebs, apoptotic bodies, debris (x, y, r_px, delta)
    spheres: list[npt.NDArray[np.float64]] = []
    if look.bleb > 0:
        pulse = 0.6 + 0.4 * np.sin(cell.blebs[:, 2] + look.tau_min * 0.15)
        r = cell.blebs[:, 1] * radius * look.bleb * pulse
        xy = on_outline(cell.blebs[:, 0], np.full(len(r), 0.97))
        spheres.append(np.column_stack([xy, r, np.full(len(r), look.cytoplasm_delta_ri)]))
    if look.fragment > 0:
        f = look.fragment
        th, dist, rf, dens = cell.bodies.T
        reach = dist * radius * (0.3 + 0.9 * f)
        xy = to_world(reach * np.cos(th), reach * np.sin(th))
        r = rf * radius * (0.35 + 0.65 * f)
        spheres.append(np.column_stack([xy, r, dens * look.cytoplasm_delta_ri]))
    if look.debris > 0:
        shown = cell.debris[: max(1, round(len(cell.debris) * look.debris))]
        th, dist, rp, dens = shown.T
        xy = to_world(dist * radius * np.cos(th), dist * radius * np.sin(th))
        spheres.append(np.column_stack([xy, rp * (0.5 + 0.5 * look.debris), dens]))
    sph = np.concatenate(spheres) if spheres else np.empty((0, 4))
    sph = sph[sph[:, 2] >= 1.0]

    extent = float(table.max()) * max(a, b) + 2.0
    if len(sph):
        extent = max(
            extent, float((np.hypot(sph[:, 0] - cell.x, sph[:, 1] - cell.y) + sph[:, 2]).max()) + 2
        )
    size = optics.size_px
    y0, y1 = max(0, math.floor(cell.y - extent)), min(size, math.ceil(cell.y + extent) + 1)
    x0, x1 = max(0, math.floor(cell.x - extent)), min(size, math.ceil(cell.x + extent) + 1)
    if y1 <= y0 or x1 <= x0:
        return None
    shape = (y1 - y0, x1 - x0)

    # main body: flattened dome over an irregular outline
    dx = np.arange(x0, x1, dtype=np.float32) - np.float32(cell.x)
    dy = np.arange(y0, y1, dtype=np.float32) - np.float32(cell.y)
    hi = np.zeros(shape, np.float32)
    lo = np.full(shape, glass, np.float32)
    delta = np.zeros(shape, np.float32)
    height = np.zeros(shape, np.float32)
    nuc_r2: F32 | None = None
    tex = np.take(
        np.take(
            texture, np.arange(y0, y1) - round(cell.y) + cell.texture_origin[0], axis=0, mode="wrap"
        ),
        np.arange(x0, x1) - round(cell.x) + cell.texture_origin[1],
        axis=1,
        mode="wrap",
    )
    if body_radius >= 2.0:
        u = (dx[None, :] * np.float32(cos_t / a) + dy[:, None] * np.float32(sin_t / a)).astype(
            np.float32
        )
        v = (dy[:, None] * np.float32(cos_t / b) - dx[None, :] * np.float32(sin_t / b)).astype(
            np.float32
        )
        mag, ang = cv2.cartToPolar(u, v)
        idx = (ang * np.float32(OUTLINE_SAMPLES / (2 * math.pi))).astype(np.intp)
        np.minimum(idx, OUTLINE_SAMPLES - 1, out=idx)
        rho = mag / table[idx]
        s = 1.0 - rho * rho
        np.maximum(s, 0.0, out=s)
        np.sqrt(s, out=s)
        # nucleus, in its own rotated ellipse
        nx_off, ny_off, nsize, nasp, nang, _ = cell.nucleus
        ncx = float(nx_off) * body_radius * cos_t - float(ny_off) * body_radius * sin_t
        ncy = float(nx_off) * body_radius * sin_t + float(ny_off) * body_radius * cos_t
        na = float(nsize) * body_radius * look.nucleus_scale / math.sqrt(float(nasp))
        nb = float(nsize) * body_radius * look.nucleus_scale * math.sqrt(float(nasp))
        cn, sn = math.cos(float(nang)), math.sin(float(nang))
        ex, ey = dx - np.float32(ncx), dy - np.float32(ncy)
        un = ex[None, :] * np.float32(cn / na) + ey[:, None] * np.float32(sn / na)
        vn = ey[:, None] * np.float32(cn / nb) - ex[None, :] * np.float32(sn / nb)
        nuc_r2 = (un * un + vn * vn).astype(np.float32)
        dome = 1.0 - nuc_r2 / np.float32(1.69)
        np.maximum(dome, 0.0, out=dome)
        np.sqrt(dome, out=dome)
        dome *= np.minimum(s * np.float32(3.0), np.float32(1.0))
        height_um = s * np.float32(cell.edge_height_um)
        height_um += dome * np.float32(max(cell.top_height_um - cell.edge_height_um, 0.0))
        np.multiply(height_um, np.float32(look.height_scale / optics.z_step_um), out=height)
        np.minimum(height, np.float32(top_slice - glass), out=height)
        inside = height > 0.02
        hi[inside] = glass + height[inside]
        amp = cell.texture_amplitude * look.texture_scale
        grain = np.clip(1.0 + np.float32(amp) * tex[inside], np.float32(0.6), np.float32(1.35))
        delta[inside] = np.float32(look.cytoplasm_delta_ri) * grain

    if len(sph):
        flat, which, frac = _splat(sph[:, :2], sph[:, 2], y0, x0, shape)
        rz = (sph[which, 2] * z_per_px).astype(np.float32)
        s_lo = np.float32(glass) + rz * (1.0 - frac)
        s_hi = np.minimum(np.float32(glass) + rz * (1.0 + frac), np.float32(top_slice))
        keep = _first_per_pixel(flat, s_hi)
        flat, s_lo, s_hi = flat[keep], s_lo[keep], s_hi[keep]
        s_d = sph[which[keep], 3].astype(np.float32)
        wins = s_hi > hi.reshape(-1)[flat]
        flat = flat[wins]
        hi.reshape(-1)[flat] = s_hi[wins]
        lo.reshape(-1)[flat] = s_lo[wins]
        delta.reshape(-1)[flat] = s_d[wins]
        height.reshape(-1)[flat] = 0.0  # no nucleus or organelles inside a sphere

    body_idx = np.flatnonzero(hi > lo)
    if body_idx.size == 0:
        return None
    layers = [
        Layer(
            body_idx,
            lo.reshape(-1)[body_idx],
            hi.reshape(-1)[body_idx],
            delta.reshape(-1)[body_idx],
        )
    ]
    hflat = height.reshape(-1)
    under = delta.reshape(-1).copy()  # RI increment of the column's middle, for the spots

    if nuc_r2 is not None and look.nucleus_delta_ri > 0:
        nuc = np.flatnonzero((nuc_r2 < 1.0) & (height > 0.5))
        if nuc.size:
            hn = hflat[nuc]
            soft = np.minimum((1.0 - nuc_r2.reshape(-1)[nuc]) * np.float32(5.0), np.float32(1.0))
            chrom = 1.0 + np.float32(0.3) * tex[::-1, ::-1].reshape(-1)[nuc]
            nuc_delta = (np.float32(look.nucleus_delta_ri) * soft * chrom).astype(np.float32)
            under[nuc] += nuc_delta
            lo_n = np.float32(glass) + np.float32(0.15) * hn
            layers.append(Layer(nuc, lo_n, np.float32(glass) + np.float32(0.85) * hn, nuc_delta))

    # small spheres in the middle of the column: nucleoli, lipid droplets; their RI is
    # absolute (over the medium), so they add what the column around them lacks
    spots: list[npt.NDArray[np.float64]] = []
    if body_radius >= 2.0 and len(cell.nucleoli):
        nx_off, ny_off, nsize, _, _, _ = cell.nucleus
        nrad = float(nsize) * body_radius * look.nucleus_scale
        px = float(nx_off) * body_radius + cell.nucleoli[:, 0] * nrad
        py = float(ny_off) * body_radius + cell.nucleoli[:, 1] * nrad
        r = cell.nucleoli[:, 2] * math.sqrt(look.nucleus_scale)
        spots.append(np.column_stack([to_world(px, py), r, cell.nucleoli[:, 3]]))
    droplets = cell.droplets[: round(len(cell.droplets) * look.droplet_share)]
    if body_radius >= 2.0 and len(droplets):
        xy = on_outline(droplets[:, 1], droplets[:, 0])
        spots.append(np.column_stack([xy, droplets[:, 2], droplets[:, 3]]))
    sp = np.concatenate(spots) if spots else np.empty((0, 4))
    sp = sp[sp[:, 2] >= 0.7]
    if len(sp):
        flat, which, frac = _splat(sp[:, :2], sp[:, 2], y0, x0, shape)
        hs = hflat[flat]
        half = np.minimum((sp[which, 2] * z_per_px).astype(np.float32) * frac, 0.45 * hs)
        extra = np.maximum(sp[which, 3] - under[flat], 0.0) * look.organelle_scale
        keep = _first_per_pixel(flat, (half * extra).astype(np.float32))
        keep = keep[(half[keep] > 0.05) & (extra[keep] > 0)]
        if keep.size:
            mid = np.float32(glass) + 0.5 * hs[keep]
            layers.append(
                Layer(
                    flat[keep],
                    (mid - half[keep]).astype(np.float32),
                    (mid + half[keep]).astype(np.float32),
                    extra[keep].astype(np.float32),
                )
            )
    top = np.where(hi > lo, hi, np.float32(0.0)).astype(np.float32)
    return CellRender(cell.track, cell.x, cell.y, y0, x0, top, tuple(layers))


# ---------------------------------------------------------------- the field


def compose(renders: list[CellRender], size: int) -> npt.NDArray[np.int32]:
    """Instance labels: each pixel belongs to the cell whose top is highest there.

    A cell hidden entirely under others takes back the (up to) 9 pixels of its
    footprint nearest its centre, never a cell's last pixel, so every rendered
    cell keeps at least one pixel (short of a footprint wholly made of others'
    last pixels).
    """
    labels = np.zeros((size, size), np.int32)
    top = np.zeros((size, size), np.float32)
    for r in renders:
        box = r.box
        sub_top, sub_lab = top[box], labels[box]
        mine = r.top > sub_top
        sub_top[mine] = r.top[mine]
        sub_lab[mine] = r.track
    hidden = [r for r in renders if not (labels[r.box] == r.track).any()]
    if hidden:
        counts = np.bincount(labels.reshape(-1), minlength=max(r.track for r in renders) + 1)
        for r in hidden:
            _take_core(r, labels, counts)
    return labels


def _take_core(r: CellRender, labels: npt.NDArray[np.int32], counts: npt.NDArray[np.intp]) -> None:
    ys, xs = np.nonzero(r.top > 0)
    gy, gx = ys + r.y0, xs + r.x0
    taken = 0
    for i in np.argsort((gx - r.x) ** 2 + (gy - r.y) ** 2, kind="stable"):
        owner = int(labels[gy[i], gx[i]])
        if owner == r.track or (owner and counts[owner] <= 1):
            continue
        counts[owner] -= 1
        counts[r.track] += 1
        labels[gy[i], gx[i]] = r.track
        taken += 1
        if taken == 9:
            return


def fill_volume(renders: list[CellRender], labels: npt.NDArray[np.int32], optics: Optics) -> F32:
    """RI increments over the medium, ``(z, y, x)``: every owned layer, summed."""
    size, z = labels.shape[0], optics.z_slices
    volume = np.zeros((z, size, size), np.float32)
    flat = volume.reshape(-1)
    plane = size * size
    top = optics.top_slice
    last = z - 1
    for r in renders:
        w = r.top.shape[1]
        own = (labels[r.box] == r.track).reshape(-1)
        for layer in r.layers:
            keep = own[layer.index]
            if not keep.any():
                continue
            local = layer.index[keep]
            pix = (local // w + r.y0) * size + (local % w + r.x0)
            lo = np.clip(layer.lo[keep], np.float32(0.0), np.float32(top))
            hi = np.clip(layer.hi[keep], lo, np.float32(top))
            d = layer.delta[keep]
            floor_lo, floor_hi = np.floor(lo), np.floor(hi)
            f_lo, f_hi = lo - floor_lo, hi - floor_hi
            k_lo, k_hi = floor_lo.astype(np.int64), floor_hi.astype(np.int64)
            np.add.at(flat, k_lo * plane + pix, d * (1.0 - f_lo))
            np.add.at(flat, np.minimum(k_lo + 1, last) * plane + pix, d * f_lo)
            np.add.at(flat, k_hi * plane + pix, -d * (1.0 - f_hi))
            np.add.at(flat, np.minimum(k_hi + 1, last) * plane + pix, -d * f_hi)
    for k in range(1, z):
        np.add(volume[k], volume[k - 1], out=volume[k])
    return volume
