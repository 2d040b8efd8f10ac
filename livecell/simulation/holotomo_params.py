"""Every knob of the holotomography simulator, with its default and unit, validated once.

Ranges are ``(low, high)`` tuples; each cell draws its own value uniformly from
the range, so cells differ from one another as real cells do. Times are
simulated minutes (``frame_interval_min`` apart), never the real-time pacing of
``livecell simulate --interval``. Defaults follow the holotomography papers
(seeds 000 and 001): HeLa cells on a Tomocube HT-X1, 0.16 um/px, ~150 cells in a
588 um square field (about 434 per mm^2, ~70 % confluent), RI 1.337 (medium) to
~1.40 (lipid droplets), necroptotic RI changes 2 to 4 h before propidium iodide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from livecell.simulation.params import (
    check_pathway_weights,
    is_finite_number,
    nonnegative_checks,
    param_error,
    raise_failed,
)

Range = tuple[float, float]

SEED_DENSITY_PER_MM2 = 150 / 0.588**2  # seed 001: ~150 HeLa cells in 588 x 588 um


@dataclass(frozen=True)
class HolotomoParams:
    # --- acquisition ---
    size_px: int = 2048  # side of the square field (pixels)
    z_slices: int = 32  # slices per tomogram
    pixel_size_um: float = 0.16  # lateral voxel size (seed 001: 160 px = 25.6 um)
    z_step_um: float = 0.4  # axial voxel size; 32 slices span 12.8 um
    positions: int = 1  # stage positions (fields of view), named Pos0, Pos1, ...
    mip: bool = False  # write the 2D maximum intensity projection "YX", not the "ZYX" volume
    frame_interval_min: float = 10.0  # simulated minutes between tomograms
    glass_slice: float = 3.0  # coverslip surface, slices from the stack bottom (<= 1/4 of it)
    # --- population ---
    cells: int = 0  # cells per position; 0: from cell_density_per_mm2 and the field's area
    cell_density_per_mm2: float = SEED_DENSITY_PER_MM2  # used when cells = 0
    treated_fraction: float = 0.7  # cells exposed to the death-inducing drugs
    death_fraction: float = 0.75  # treated cells that die; the rest stay live_treated
    pathway_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # apo, necroptosis, necrosis
    onset_range_min: Range = (0.0, 360.0)  # death onsets, uniform, min after frame 0 (may be < 0)
    # --- cells (HeLa, spread on glass) ---
    radius_um: Range = (13.0, 25.0)  # equivalent radius of the spread footprint (~50 % cover)
    aspect: Range = (0.55, 1.0)  # minor / major axis of the footprint
    irregularity: Range = (0.3, 1.0)  # scales the outline's harmonic wobble
    edge_height_um: Range = (1.0, 2.2)  # lamella thickness
    top_height_um: Range = (4.0, 8.0)  # height over the nucleus
    cytoplasm_delta_ri: Range = (0.013, 0.026)  # cytoplasm RI minus the medium's
    texture_amplitude: Range = (0.06, 0.2)  # granularity of the cytoplasm (fraction of its delta)
    nucleus_size: Range = (0.3, 0.48)  # nucleus radius / cell radius
    nucleus_delta_ri: Range = (0.002, 0.008)  # nucleus RI above the cytoplasm's
    nucleolus_delta_ri: Range = (0.03, 0.045)  # nucleoli RI above the medium's
    droplets: Range = (3.0, 30.0)  # lipid droplets per untreated cell (treated: up to 1.8x)
    droplet_delta_ri: Range = (0.04, 0.058)  # lipid droplet RI above the medium's
    speed_um_per_min: Range = (0.05, 0.4)  # migration speed of a live cell
    treated_effect: float = 1.0  # strength of the live_treated changes (rounder, denser, smaller)
    # --- death time courses ---
    apoptosis_condense_min: Range = (60.0, 150.0)  # onset to full shrinkage and condensation
    apoptosis_fragment_min: Range = (90.0, 240.0)  # then fragmentation into apoptotic bodies
    annexin_delay_min: Range = (20.0, 60.0)  # apoptosis onset to Annexin V positive (marker_t)
    necroptosis_lead_min: Range = (120.0, 240.0)  # RI drop (onset) to rupture = PI (marker_t)
    necrosis_lysis_min: Range = (15.0, 45.0)  # onset (fast swelling) to lysis = PI (marker_t)
    collapse_min: Range = (30.0, 90.0)  # rupture to the collapsed ghost
    # --- optics and reconstruction ---
    medium_ri: float = 1.337  # culture medium (DMEM) refractive index
    medium_ri_sd: float = 0.0008  # position-to-position spread of the medium's RI
    noise_ri: float = 0.0012  # sd of the reconstruction noise, per voxel
    background_ri: float = 0.0005  # amplitude of the slowly varying background
    ripple_ri: float = 0.0003  # amplitude of the interference fringes, drifting between frames
    ripple_period_px: Range = (25.0, 80.0)  # period of the fringes
    halo_ri: float = 0.0015  # RI underestimate around cells (missing-cone artefact)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # a TOML array
                object.__setattr__(self, f.name, tuple(value))
        _validate(self)

    def glass_z(self) -> float:
        """The coverslip's z in slices: ``glass_slice``, but never above a quarter of the stack."""
        return min(self.glass_slice, 0.25 * (self.z_slices - 1))

    def cells_per_position(self) -> int:
        if self.cells > 0:
            return self.cells
        side_mm = self.size_px * self.pixel_size_um / 1000.0
        return round(self.cell_density_per_mm2 * side_mm * side_mm)


def _validate(p: HolotomoParams) -> None:
    checks: list[tuple[str, bool, str]] = [
        ("size_px", 32 <= p.size_px <= 16384, "must be 32 to 16384"),
        ("z_slices", 4 <= p.z_slices <= 512, "must be 4 to 512"),
        ("positions", 1 <= p.positions <= 1000, "must be 1 to 1000"),
        ("cells", 0 <= p.cells <= 100_000, "must be 0 (from the density) to 100000"),
        ("treated_fraction", 0 <= p.treated_fraction <= 1, "must be in [0, 1]"),
        ("death_fraction", 0 <= p.death_fraction <= 1, "must be in [0, 1]"),
        ("medium_ri", 1.3 <= p.medium_ri <= 1.4, "must be 1.3 to 1.4"),
    ]
    for name in ("pixel_size_um", "z_step_um", "frame_interval_min"):
        value = getattr(p, name)
        checks.append((name, is_finite_number(value) and value > 0, "must be a positive number"))
    checks += nonnegative_checks(
        p,
        (
            "glass_slice",
            "cell_density_per_mm2",
            "treated_effect",
            "medium_ri_sd",
            "noise_ri",
            "background_ri",
            "ripple_ri",
            "halo_ri",
        ),
    )
    raise_failed(checks)
    for f in fields(p):
        value = getattr(p, f.name)
        if f.name == "pathway_weights":
            check_pathway_weights(f.name, value)
        elif isinstance(value, tuple):
            floor = -math.inf if f.name == "onset_range_min" else 0.0
            if not (
                len(value) == 2
                and all(is_finite_number(v) for v in value)
                and floor <= value[0] <= value[1]
            ):
                sign = "" if f.name == "onset_range_min" else ", both >= 0"
                raise param_error(
                    f.name, f"must be (low, high) with low <= high{sign}, got {value}"
                )
    if p.radius_um[0] / p.pixel_size_um < 4.0:
        raise param_error("radius_um", "cells must be at least 4 px in radius")
    if p.aspect[0] <= 0 or p.aspect[1] > 1:
        raise param_error("aspect", "must be within (0, 1]")
