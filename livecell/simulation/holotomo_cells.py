"""HeLa cells for the holotomography simulator: what each cell is, and how it looks when.

A cell is drawn once, with everything random about it (size, outline, refractive
index, organelles, fate and the durations of its death). How it looks at a given
time is a pure function of the minutes since its death onset (``look_at``), so
its state only ever moves forward and one seed always gives the same run.

The five states (seeds 000, 001) and what changes in each:

- ``live_control``: untreated; spread, irregular outline, lamella and nuclear dome.
- ``live_treated``: treated, not dying (yet): a little smaller, rounder, taller and
  denser, with denser lipid droplets; smaller than the spread between cells.
- ``apoptosis``: shrinkage and rounding, condensation (cytoplasm and nucleus RI
  rise, the nucleus shrinks: pyknosis), granular texture, blebbing, then
  fragmentation into dense apoptotic bodies. Annexin V turns positive
  ``annexin_delay_min`` after onset (the death's ``marker_t``).
- ``necroptosis``: slow swelling as the cell takes up water, so its RI falls and its
  texture fades, for ``necroptosis_lead_min`` before the membrane ruptures and
  propidium iodide (PI, ``marker_t``) enters; then the cell collapses to a ragged,
  balloon-like ghost whose nucleus stays visible.
- ``necrosis``: fast swelling, RI falling towards the medium, lysis within
  ``necrosis_lysis_min`` (PI), then a faint ragged ghost with debris and a
  dissolving nucleus (karyolysis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from livecell.simulation.holotomo_params import HolotomoParams, Range
from livecell.simulation.scene import APOPTOSIS, DEATH_PATHWAYS, NECROPTOSIS, NECROSIS

FloatArray = npt.NDArray[np.float64]

HARMONICS = np.arange(1, 15)  # outline wobble: cos(k theta), k = 1 (polarity) .. 14
RAGGED_HARMONICS = np.arange(7, 48)  # edge damage after rupture
TREATED_DROPLET_GAIN = 0.8  # treated cells hold up to this much more lipid droplets
LIVE_CONTROL = "live_control"
LIVE_TREATED = "live_treated"


@dataclass(slots=True)
class HeLaCell:
    """One cell of a field: fixed traits plus its current position and velocity (pixels)."""

    track: int
    x: float
    y: float
    vx: float  # px per frame
    vy: float
    angle_rad: float  # orientation of the footprint's major axis
    speed_px: float  # typical displacement per frame of the live cell
    radius_px: float  # equivalent radius of the footprint
    aspect: float  # minor / major axis
    harmonic_amp: FloatArray  # per HARMONICS, relative to the radius
    harmonic_phase: FloatArray
    ragged_amp: FloatArray  # per RAGGED_HARMONICS, relative to the radius
    ragged_phase: FloatArray
    edge_height_um: float
    top_height_um: float
    cytoplasm_delta_ri: float
    texture_amplitude: float
    texture_origin: tuple[int, int]  # where the cell's texture sits in the shared texture block
    nucleus: FloatArray  # dx, dy (fraction of radius, cell frame), size, aspect, angle, delta_ri
    nucleoli: FloatArray  # (n, 4): dx, dy (fraction of the nucleus radius), radius_px, delta_ri
    droplets: FloatArray  # (n, 4): rho (fraction of the outline), theta, radius_px, delta_ri
    blebs: FloatArray  # (n, 3): theta, size (fraction of radius), phase
    bodies: FloatArray  # (n, 4): theta, distance, radius (fractions of radius), delta factor
    debris: FloatArray  # (n, 4): theta, distance (fraction of radius), radius_px, delta_ri
    treated: bool
    pathway: str  # "" for a cell that does not die
    onset_min: float  # math.inf for a cell that does not die
    marker_min: float  # Annexin V (apoptosis) or PI (necroptosis, necrosis) turns positive
    first_min: float  # condensation / lead to rupture / lysis
    second_min: float  # fragmentation / collapse


@dataclass(frozen=True, slots=True)
class Look:
    """How a cell looks at one time: multipliers and values the renderer applies."""

    state: str  # a PATCH_STATES name
    tau_min: float  # minutes since the death onset (negative before)
    radius_scale: float = 1.0
    height_scale: float = 1.0
    cytoplasm_delta_ri: float = 0.02
    texture_scale: float = 1.0
    irregularity: float = 1.0
    ragged: float = 0.0  # 0..1 edge damage
    nucleus_scale: float = 1.0
    nucleus_delta_ri: float = 0.005
    organelle_scale: float = 1.0  # multiplies the RI increments of droplets and nucleoli
    droplet_share: float = 1.0  # share of the cell's lipid droplets shown
    bleb: float = 0.0  # 0..1 blebbing
    fragment: float = 0.0  # 0..1 from intact to apoptotic bodies
    debris: float = 0.0  # 0..1 share of the debris particles shown
    motility: float = 1.0


def _uniform(rng: np.random.Generator, bounds: Range, n: int | None = None) -> FloatArray:
    return rng.uniform(bounds[0], bounds[1], n)


def draw_cell(
    rng: np.random.Generator, track: int, x: float, y: float, radius_px: float, p: HolotomoParams
) -> HeLaCell:
    """A new cell at (x, y); every draw is made whatever the outcome, so knobs do not reshuffle."""
    px_per_min = p.frame_interval_min / p.pixel_size_um
    speed = float(_uniform(rng, p.speed_um_per_min)) * px_per_min
    heading = rng.uniform(0, 2 * math.pi)
    irregular = float(_uniform(rng, p.irregularity))
    amp = irregular * rng.uniform(0.0, 1.0, HARMONICS.size) * 0.26 / HARMONICS**0.9
    amp[0] *= 0.5  # k = 1 makes the cell pear-shaped (polarised), not displaced
    ragged = rng.exponential(1.0, RAGGED_HARMONICS.size) / RAGGED_HARMONICS
    ragged *= 0.08 / max(float(np.sqrt((ragged**2).sum() / 2)), 1e-9)  # rms 0.08 at full damage
    nucleus = np.array(
        [
            rng.uniform(-0.2, 0.2),
            rng.uniform(-0.2, 0.2),
            float(_uniform(rng, p.nucleus_size)),
            rng.uniform(0.7, 1.0),
            rng.uniform(0, math.pi),
            float(_uniform(rng, p.nucleus_delta_ri)),
        ]
    )
    n_nucleoli = int(rng.integers(1, 5))
    nucleoli = np.column_stack(
        [
            rng.uniform(-0.5, 0.5, n_nucleoli),
            rng.uniform(-0.5, 0.5, n_nucleoli),
            rng.uniform(0.6, 1.3, n_nucleoli) / p.pixel_size_um,
            _uniform(rng, p.nucleolus_delta_ri, n_nucleoli),
        ]
    )
    # drawn for a treated cell, which has more; a control cell shows the first 1 / (1 + gain)
    n_droplets = round(float(_uniform(rng, p.droplets)) * (1.0 + TREATED_DROPLET_GAIN))
    droplets = np.column_stack(
        [
            rng.uniform(0.35, 0.9, n_droplets),
            rng.uniform(0, 2 * math.pi, n_droplets),
            rng.uniform(0.25, 0.7, n_droplets) / p.pixel_size_um,
            _uniform(rng, p.droplet_delta_ri, n_droplets),
        ]
    )
    n_blebs = int(rng.integers(6, 15))
    blebs = np.column_stack(
        [
            rng.uniform(0, 2 * math.pi, n_blebs),
            rng.uniform(0.08, 0.2, n_blebs),
            rng.uniform(0, 2 * math.pi, n_blebs),
        ]
    )
    n_bodies = int(rng.integers(3, 9))
    bodies = np.column_stack(
        [
            rng.uniform(0, 2 * math.pi, n_bodies),
            rng.uniform(0.2, 1.0, n_bodies),
            rng.uniform(0.15, 0.32, n_bodies),
            rng.uniform(0.9, 1.4, n_bodies),
        ]
    )
    n_debris = int(rng.integers(6, 25))
    debris = np.column_stack(
        [
            rng.uniform(0, 2 * math.pi, n_debris),
            rng.uniform(0.1, 1.3, n_debris),
            rng.uniform(0.3, 1.0, n_debris) / p.pixel_size_um,
            rng.uniform(0.004, 0.015, n_debris),
        ]
    )
    treated = bool(rng.random() < p.treated_fraction)
    dies = treated and bool(rng.random() < p.death_fraction)
    weights = np.asarray(p.pathway_weights, dtype=float)
    pathway = DEATH_PATHWAYS[int(rng.choice(3, p=weights / weights.sum()))]
    onset = float(_uniform(rng, p.onset_range_min))
    durations = {
        APOPTOSIS: (
            _uniform(rng, p.apoptosis_condense_min),
            _uniform(rng, p.apoptosis_fragment_min),
        ),
        NECROPTOSIS: (_uniform(rng, p.necroptosis_lead_min), _uniform(rng, p.collapse_min)),
        NECROSIS: (_uniform(rng, p.necrosis_lysis_min), _uniform(rng, p.collapse_min)),
    }
    annexin = float(_uniform(rng, p.annexin_delay_min))
    first, second = (float(v) for v in durations[pathway])
    marker = onset + (annexin if pathway == APOPTOSIS else first)
    return HeLaCell(
        track=track,
        x=x,
        y=y,
        vx=speed * math.cos(heading),
        vy=speed * math.sin(heading),
        angle_rad=rng.uniform(0, math.pi),
        speed_px=speed,
        radius_px=radius_px,
        aspect=float(_uniform(rng, p.aspect)),
        harmonic_amp=amp,
        harmonic_phase=rng.uniform(0, 2 * math.pi, HARMONICS.size),
        ragged_amp=ragged,
        ragged_phase=rng.uniform(0, 2 * math.pi, RAGGED_HARMONICS.size),
        edge_height_um=float(_uniform(rng, p.edge_height_um)),
        top_height_um=float(_uniform(rng, p.top_height_um)),
        cytoplasm_delta_ri=float(_uniform(rng, p.cytoplasm_delta_ri)),
        texture_amplitude=float(_uniform(rng, p.texture_amplitude)),
        texture_origin=(int(rng.integers(0, 1 << 16)), int(rng.integers(0, 1 << 16))),
        nucleus=nucleus,
        nucleoli=nucleoli,
        droplets=droplets,
        blebs=blebs,
        bodies=bodies,
        debris=debris,
        treated=treated,
        pathway=pathway if dies else "",
        onset_min=onset if dies else math.inf,
        marker_min=marker if dies else math.inf,
        first_min=first,
        second_min=second,
    )


def _ramp(x: float) -> float:
    return min(max(x, 0.0), 1.0)


def _smooth(x: float) -> float:
    x = _ramp(x)
    return x * x * (3.0 - 2.0 * x)


def look_at(cell: HeLaCell, minutes: float, treated_effect: float = 1.0) -> Look:
    """The cell's appearance ``minutes`` after frame 0 (a pure function: states move forward)."""
    tau = minutes - cell.onset_min
    e = treated_effect if cell.treated else 0.0
    base = Look(
        state=LIVE_TREATED if cell.treated else LIVE_CONTROL,
        tau_min=tau,
        radius_scale=1.0 - 0.05 * e,
        height_scale=1.0 + 0.08 * e,
        cytoplasm_delta_ri=cell.cytoplasm_delta_ri + 0.0015 * e,
        texture_scale=1.0 + 0.3 * e,
        irregularity=1.0 - 0.25 * e,
        nucleus_delta_ri=float(cell.nucleus[5]) + 0.001 * e,
        organelle_scale=1.0 + 0.15 * e,
        droplet_share=(1.0 + TREATED_DROPLET_GAIN * min(e, 1.0)) / (1.0 + TREATED_DROPLET_GAIN),
    )
    if not cell.pathway or tau < 0:
        return base
    first, second = cell.first_min, cell.second_min
    if cell.pathway == APOPTOSIS:
        c = _smooth(tau / first)
        f = _smooth((tau - first) / second)
        return Look(
            state=APOPTOSIS,
            tau_min=tau,
            radius_scale=base.radius_scale * (1.0 - 0.35 * c),
            height_scale=base.height_scale * (1.0 + 0.6 * c),
            cytoplasm_delta_ri=base.cytoplasm_delta_ri + 0.008 * c,
            texture_scale=base.texture_scale * (1.0 + 1.2 * c),
            irregularity=base.irregularity * (1.0 - 0.7 * c),
            nucleus_scale=1.0 - 0.45 * c,
            nucleus_delta_ri=base.nucleus_delta_ri + 0.008 * c,
            organelle_scale=base.organelle_scale,
            droplet_share=base.droplet_share,
            bleb=_smooth((c - 0.25) / 0.5) * (1.0 - f),
            fragment=f,
            motility=1.0 - c,
        )
    if cell.pathway == NECROPTOSIS:
        p = _ramp(tau / first) ** 1.15
        r = _smooth((tau - first) / second)
        return Look(
            state=NECROPTOSIS,
            tau_min=tau,
            radius_scale=base.radius_scale * (1.0 + 0.16 * p + 0.06 * r),
            height_scale=base.height_scale * (1.0 + 0.1 * p - 0.45 * r),
            cytoplasm_delta_ri=base.cytoplasm_delta_ri * (1.0 - 0.35 * p - 0.4 * r),
            texture_scale=base.texture_scale * (1.0 - 0.4 * p - 0.3 * r),
            irregularity=base.irregularity * (1.0 - 0.6 * p),  # a round balloon
            ragged=0.35 * r,
            nucleus_scale=1.0 + 0.08 * p,
            nucleus_delta_ri=base.nucleus_delta_ri * (1.0 - 0.15 * p) + 0.004 * r,  # remains
            organelle_scale=base.organelle_scale * (1.0 - 0.5 * r),
            droplet_share=base.droplet_share,
            debris=0.3 * r,
            motility=1.0 - p,
        )
    p = _smooth(tau / first)
    r = _smooth((tau - first) / second)
    return Look(
        state=NECROSIS,
        tau_min=tau,
        radius_scale=base.radius_scale * (1.0 + 0.32 * p + 0.06 * r),
        height_scale=base.height_scale * (1.0 + 0.2 * p - 0.65 * r),
        cytoplasm_delta_ri=base.cytoplasm_delta_ri * (1.0 - 0.45 * p - 0.4 * r),
        texture_scale=base.texture_scale * (1.0 - 0.6 * p),
        irregularity=base.irregularity * (1.0 - 0.5 * p),
        ragged=r,
        nucleus_scale=1.0 - 0.35 * r,
        nucleus_delta_ri=base.nucleus_delta_ri * (1.0 - 0.4 * p - 0.6 * r),  # karyolysis
        organelle_scale=base.organelle_scale * (1.0 - 0.6 * r),
        droplet_share=base.droplet_share,
        debris=r,
        motility=0.0,
    )


def cell_state(look: Look) -> str:
    """The ``tracks.csv`` state: ``live`` or the death pathway."""
    return "live" if look.state in (LIVE_CONTROL, LIVE_TREATED) else look.state
