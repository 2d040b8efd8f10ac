"""One cell's state and how it looks at a given frame (the death pathways' time courses).

``Cell`` is mutable state owned by ``PositionWorld`` (``nanowell_world.py``);
``cell_look`` turns it into the ``CellLook`` that ``phase.py`` renders. Looks
are pure functions of the state and the frame index: every random draw
(blebs, granules, outline noise) happens in the world's per-frame update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from livecell.simulation.nanowell_params import NanowellParams
from livecell.simulation.phase import Bump, CellLook
from livecell.simulation.scene import APOPTOSIS, EFFECTOR, NECROPTOSIS, NECROSIS, Well

PATHWAYS = (APOPTOSIS, NECROPTOSIS, NECROSIS)
HARMONICS = 4  # outline modes 2..5
TEXTURE_BANK_PX = 768
MODE_DECAY = (2.0 / np.arange(2, HARMONICS + 2, dtype=np.float64))[:, None]  # low modes dominate
WANDER, SEEK, CONJUGATED, STILL = "wander", "seek", "conjugated", "still"


@dataclass(eq=False)
class Cell:
    """One cell's mutable state (internal to the world)."""

    track: int
    well: int
    cell_type: str
    x: float
    y: float
    radius_px: float
    radius_goal_px: float
    speed_px_per_min: float
    heading: float
    harmonics: np.ndarray
    harmonic_sd: float
    polarity: float
    thickness: float
    glow: float
    texture_amp: float
    tex_offset: tuple[int, int]
    tex_phase: float
    tex_rate: float
    nucleus: tuple[float, float, float]
    defocus_px: float
    label_level: float
    born_t: int
    mode: str = WANDER
    partner: int = 0
    attach_angle: float = 0.0
    busy_until_t: int = 0
    activity: float = 1.0
    pathway: str = ""
    onset_t: int = -1
    scheduled: tuple[int, str] | None = None
    marker_t: int = -1
    annexin_t: int = -1
    pi_t: int = -1
    rupture_t: int = -1
    gone_t: int = -1
    fate_span_min: float = 1.0
    fate_size: float = 0.0
    rounding_t: int = -1
    division_t: int = -1
    blebs: tuple[Bump, ...] = ()
    fine_offset: tuple[int, int] = (0, 0)
    extent_px: float = 0.0


def progress(cell: Cell, t: int, p: NanowellParams) -> float:
    """0 before onset, rising to 1 at the end of the pathway's first phase."""
    if not cell.pathway or t < cell.onset_t:
        return 0.0
    if cell.pathway == APOPTOSIS:
        return min(1.0, (t - cell.onset_t + 1) * p.frame_interval_min / cell.fate_span_min)
    return min(1.0, (t - cell.onset_t + 1) / max(cell.rupture_t - cell.onset_t, 1))


def cell_look(
    cell: Cell,
    t: int,
    *,
    p: NanowellParams,
    well: Well,
    offset_xy: tuple[float, float],
    banks: tuple[np.ndarray, ...],
) -> CellLook:
    """How a cell looks at frame ``t``: its live look changed by rounding or its pathway.

    Time courses (``s`` rises 0 -> 1 over the pathway's first phase, slowly at
    first, so the first frames after onset differ from live by a few percent):
    apoptosis shrinks, rounds, thickens and brightens, shows granular texture and
    blebs, fading a little after PI; necroptosis swells, smooths and loses its
    glow, then ruptures (PI) and fades to a ghost; necrosis swells fast, ruptures
    and fades out until the cell is gone.
    """
    dt = p.frame_interval_min
    radius = cell.radius_px
    harmonics = cell.harmonics
    thickness, glow, tex_amp = cell.thickness, cell.glow, cell.texture_amp
    nucleus_amp = cell.nucleus[2]
    bumps: list[Bump] = []
    weights = [
        math.cos(cell.tex_phase + cell.tex_rate * t),
        math.sin(cell.tex_phase + cell.tex_rate * t),
        0.0,
    ]
    label, annexin, pi = cell.label_level, 0.0, 0.0
    if cell.polarity and not cell.pathway and cell.rounding_t < 0:
        lead = cell.polarity * (0.6 if cell.mode == CONJUGATED else 1.0)
        bumps.append(Bump(cell.heading, lead, 2.5))
        bumps.append(Bump(cell.heading + math.pi, 0.5 * cell.polarity, 14.0))
    if cell.rounding_t >= 0:
        q = min(1.0, (t - cell.rounding_t + 1) / max(cell.division_t - cell.rounding_t, 1))
        harmonics = harmonics * (1 - 0.8 * q)
        radius *= 1 - 0.08 * q
        glow += 0.25 * q
        thickness *= 1 + 0.25 * q
    s = smoothstep(progress(cell, t, p))
    if cell.pathway == APOPTOSIS:
        radius *= 1 - cell.fate_size * s
        thickness *= 1 + 0.5 * s
        glow += 0.2 * s
        tex_amp *= 1 + 0.8 * s
        weights[2] = 0.8 * s
        harmonics = harmonics * (1 - 0.5 * s)
        bumps.extend(Bump(b.angle, b.amplitude * s, b.kappa) for b in cell.blebs)
        if t >= cell.pi_t:
            thickness *= 1 - 0.4 * min(1.0, (t - cell.pi_t + 1) * dt / 30.0)
    elif cell.pathway:
        fast = cell.pathway == NECROSIS
        grow = s if not fast else progress(cell, t, p) ** 1.5
        radius *= 1 + cell.fate_size * grow
        thickness *= 1 - (0.4 if fast else 0.3) * grow
        glow *= 1 - grow
        tex_amp *= 1 - 0.5 * grow
        harmonics = harmonics * (1 - 0.6 * grow)
        if t >= cell.rupture_t:
            if fast:
                u = (t - cell.rupture_t + 1) / max(cell.gone_t - cell.rupture_t, 1)
                thickness *= 0.7 * (1 - 0.8 * u)
                label *= 1 - u
            else:
                u = min(1.0, (t - cell.rupture_t + 1) * dt / 30.0)
                thickness *= 1 - 0.55 * u
                label *= 1 - 0.7 * u
            harmonics = cell.harmonics
            nucleus_amp *= 0.5
    if cell.annexin_t >= 0 and t >= cell.annexin_t:
        annexin = 0.6 + 0.4 * min(1.0, (t - cell.annexin_t) / 2)
    if cell.pi_t >= 0 and t >= cell.pi_t:
        pi = 0.6 + 0.4 * min(1.0, (t - cell.pi_t) / 2)
    w = well
    dx, dy = offset_xy
    return CellLook(
        track=cell.track,
        x_px=cell.x + dx,
        y_px=cell.y + dy,
        radius_px=radius,
        harmonics=harmonics,
        bumps=tuple(bumps),
        max_extent_px=min(1.6 * radius, p.max_cell_extent_px() - 2.0),
        thickness=thickness,
        glow=glow,
        textures=banks,
        tex_offsets=(cell.tex_offset, cell.tex_offset, cell.fine_offset),
        tex_weights=(weights[0], weights[1], weights[2]),
        texture_amp=tex_amp,
        nucleus_dx=cell.nucleus[0],
        nucleus_dy=cell.nucleus[1],
        nucleus_amp=nucleus_amp,
        defocus_px=cell.defocus_px,
        clip=(w.x0, w.y0, w.x1, w.y1),
        label_level=label,
        annexin=annexin,
        pi=pi,
        is_effector=cell.cell_type == EFFECTOR,
    )


def smoothstep(x: float) -> float:
    return x * x * (3.0 - 2.0 * x)
