"""Refractive-index tomograms from cells: column layers, labels and the volume.

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
over the volume plus the cells' pixels, whatever their shapes. Noise and the
background are ``holotomo_optics``'s. Everything is float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from livecell.simulation.holotomo_cells import HARMONICS, RAGGED_HARMONICS, HeLaCell, Look

F32 = npt.NDArray[np.float32]

OUTLINE_SAMPLES = 256  # angles at which a cell's outline radius is tabulated


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
