"""Every knob of the nanowell simulator, with its default and unit, validated once.

Ranges are ``(low, high)`` tuples; each cell draws its own value uniformly from
the range, so cells differ from one another as real cells do. Times are
simulated minutes (``frame_interval_min`` apart), never the real-time pacing of
``livecell simulate --interval``. Defaults follow the LF-TIMING paper (seed 003):
20x objective at 0.325 um/px, frames every 5 min, effectors moving 5 to 10 um/min.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from livecell.simulation.params import (
    check_pathway_weights,
    is_finite_number,
    nonnegative_checks,
    param_error,
    raise_failed,
)

Range = tuple[float, float]


@dataclass(frozen=True)
class NanowellParams:
    # --- acquisition ---
    frame_size_px: int = 2048  # side of the square camera frame
    pixel_size_um: float = 0.325  # sample pixel size (20x objective on an sCMOS camera)
    positions: int = 1  # stage positions; each is its own patch of the chip
    frame_interval_min: float = 5.0  # simulated minutes between frames (not the real-time pacing)
    channels: bool = False  # add fluorescence: image "CYX" = phase, Annexin V, PI, labels
    # --- chip ---
    wells_per_side: int = 8  # lattice pitch is frame_size_px / wells_per_side
    wall_thickness_um: float = 12.0  # PDMS wall between neighbouring wells
    lattice_offset_max_px: float = 6.0  # random shift of the lattice, per position, each axis
    debris_per_well: float = 5.0  # mean number of static specks on each well floor
    # --- loading ---
    mean_cells_per_well: float = 2.0  # Poisson loading mean, clipped to max_cells_per_well
    max_cells_per_well: int = 5  # no well ever holds more (mitosis waits for room)
    effector_fraction: float = 0.5  # probability that a loaded cell is an effector
    # --- cells ---
    effector_radius_um: Range = (3.5, 5.5)  # effectors: smaller, irregular, polarised
    target_radius_um: Range = (5.0, 7.5)  # targets: larger, rounder
    effector_speed_um_per_min: Range = (5.0, 10.0)  # migration speed of a crawling effector
    target_speed_um_per_min: Range = (0.1, 1.0)  # targets barely move
    seek_rate_per_h: float = 1.5  # rate at which a free effector starts seeking a live target
    conjugation_min: Range = (20.0, 90.0)  # how long an effector stays on a target it reached
    mitosis_per_h: float = 0.02  # division rate of a live cell (parent ends, two daughters)
    mitosis_rounding_min: Range = (15.0, 40.0)  # the cell rounds up this long before dividing
    # --- death ---
    kill_rate_per_contact_h: float = 0.4  # hazard while an effector touches a live target
    kill_delay_min: Range = (15.0, 90.0)  # the killing contact frame to the death onset
    spontaneous_death_per_h: float = 0.01  # death rate of any live cell without contact
    kill_pathway_weights: tuple[float, float, float] = (0.7, 0.2, 0.1)  # apo, necropt, necrosis
    spontaneous_pathway_weights: tuple[float, float, float] = (0.4, 0.3, 0.3)  # same order
    apoptosis_shrink_min: Range = (90.0, 180.0)  # onset to full shrinkage and blebbing
    annexin_delay_min: Range = (10.0, 45.0)  # apoptosis onset to Annexin V positive (marker_t)
    secondary_necrosis_min: Range = (90.0, 240.0)  # Annexin V to PI in late apoptosis
    necroptosis_rupture_min: Range = (40.0, 120.0)  # onset (swelling) to rupture = PI (marker_t)
    necrosis_rupture_min: Range = (10.0, 25.0)  # onset (fast swelling) to rupture = PI (marker_t)
    necrosis_lysis_min: Range = (15.0, 45.0)  # rupture to the cell gone (its track ends)
    # --- phase-contrast optics ---
    halo_sigma_px: float = 5.0  # width of the phase halo (low-pass of the phase ring)
    cell_contrast: float = 1.0  # dark-body / bright-halo strength of a live cell
    contrast_variation: float = 0.3  # cell-to-cell spread of optical thickness (fraction)
    texture_amplitude: float = 0.15  # cytoplasm granularity (fraction of thickness)
    wall_contrast: float = 0.5  # halo strength of the well walls
    illumination_unevenness: float = 0.15  # peak-to-peak relative variation of the lamp field
    focus_blur_px: Range = (0.4, 1.6)  # Gaussian sigma of the slowly drifting defocus
    focus_period_frames: float = 40.0  # period of the focus drift
    # --- camera ---
    background_electrons: float = 3000.0  # photo-electrons per pixel on the well floor
    read_noise_electrons: float = 1.6  # sCMOS read noise
    adu_per_electron: float = 2.0  # camera gain
    camera_offset_adu: float = 100.0  # dark level
    # --- stage ---
    stage_drift_step_px: float = 1.2  # sd of the rigid field shift between frames, each axis
    stage_drift_max_px: float = 10.0  # the shift never exceeds this, each axis, from t = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # a TOML array
                object.__setattr__(self, f.name, tuple(value))
        _validate(self)

    @property
    def pitch_px(self) -> float:
        return self.frame_size_px / self.wells_per_side

    @property
    def wall_px(self) -> float:
        return self.wall_thickness_um / self.pixel_size_um

    def max_cell_extent_px(self) -> float:
        """A bound on a cell's radius in any state (swelling, polarisation, blebs)."""
        radius = max(self.effector_radius_um[1], self.target_radius_um[1]) / self.pixel_size_um
        return 1.6 * 1.45 * radius + 2.0


def _validate(p: NanowellParams) -> None:
    checks: list[tuple[str, bool, str]] = [
        ("frame_size_px", p.frame_size_px >= 64, "must be at least 64"),
        ("pixel_size_um", p.pixel_size_um > 0, "must be positive"),
        ("positions", 1 <= p.positions <= 1000, "must be 1 to 1000"),
        ("frame_interval_min", p.frame_interval_min > 0, "must be positive"),
        ("wells_per_side", p.wells_per_side >= 1, "must be at least 1"),
        ("wall_thickness_um", p.wall_thickness_um > 0, "must be positive"),
        ("lattice_offset_max_px", p.lattice_offset_max_px >= 0, "must be >= 0"),
        ("debris_per_well", p.debris_per_well >= 0, "must be >= 0"),
        ("mean_cells_per_well", p.mean_cells_per_well >= 0, "must be >= 0"),
        ("max_cells_per_well", 0 <= p.max_cells_per_well <= 20, "must be 0 to 20"),
        ("effector_fraction", 0 <= p.effector_fraction <= 1, "must be in [0, 1]"),
        ("halo_sigma_px", p.halo_sigma_px > 0, "must be positive"),
        ("stage_drift_step_px", p.stage_drift_step_px >= 0, "must be >= 0"),
        ("stage_drift_max_px", p.stage_drift_max_px >= 0, "must be >= 0"),
        ("background_electrons", p.background_electrons > 0, "must be positive"),
        ("adu_per_electron", p.adu_per_electron > 0, "must be positive"),
    ]
    checks += nonnegative_checks(
        p,
        (
            "seek_rate_per_h",
            "kill_rate_per_contact_h",
            "mitosis_per_h",
            "spontaneous_death_per_h",
            "cell_contrast",
            "contrast_variation",
            "texture_amplitude",
            "wall_contrast",
            "illumination_unevenness",
            "focus_period_frames",
            "read_noise_electrons",
            "camera_offset_adu",
        ),
    )
    raise_failed(checks)
    for f in fields(p):
        value = getattr(p, f.name)
        if isinstance(value, tuple) and len(value) == 2:
            lo, hi = value
            if not (is_finite_number(lo) and is_finite_number(hi) and 0 <= lo <= hi):
                raise param_error(f.name, f"must be (low, high) with 0 <= low <= high, got {value}")
    for name in ("kill_pathway_weights", "spontaneous_pathway_weights"):
        check_pathway_weights(name, getattr(p, name))
    for name in ("effector_radius_um", "target_radius_um"):
        if getattr(p, name)[0] * 1.0 / p.pixel_size_um < 3.0:
            raise param_error(name, "cells must be at least 3 px in radius")
    room = p.pitch_px - p.wall_px - 2 * (p.stage_drift_max_px + 2)
    if room < 2 * p.max_cell_extent_px() + 4:
        raise param_error(
            "wells_per_side",
            f"wells of {p.pitch_px - p.wall_px:.0f} px are too small for cells of up to "
            f"{p.max_cell_extent_px():.0f} px radius with {p.stage_drift_max_px} px drift",
        )
