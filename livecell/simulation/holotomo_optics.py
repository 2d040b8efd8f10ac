"""What the tomograph adds to the cells: reconstruction noise, background, texture.

- Noise: spatially correlated, about ``noise_ri`` per voxel, from a block generated
  once and reused at random offsets and flips (generating 134 M normal deviates per
  frame would take longer than the whole frame).
- Background (2D, added to every slice): the medium's RI, a slow variation across
  the field, interference fringes that drift between frames, and dark halos just
  outside cells (RI underestimated there: the missing-cone artefact).
- Texture: one periodic block of band-passed noise that cells take their
  cytoplasm's granularity from, each at its own origin, moving with the cell.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

TEXTURE_SIDE = 1024


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
    """Spatially correlated reconstruction noise, generated once and reused at random offsets.

    Each ``tile`` x ``tile`` piece of a frame takes its own random window and flips
    of the block, so neighbouring pieces and successive frames differ.
    """

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
                # flips along z and y keep rows contiguous (an x flip would cost a third more)
                sz, sy = (1 if f else -1 for f in rng.random(2) < 0.5)
                tile = self.block[::sz, oy : oy + h, ox : ox + w]
                volume[:, ty : ty + h, tx : tx + w] += tile[:, ::sy]


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
