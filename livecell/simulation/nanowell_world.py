"""Cells in the nanowells of one position: loading, motion, death pathways, mitosis.

Positions are kept in the chip frame (the image frame at t = 0); the stage
offset of each frame is added when a cell's look is made. A cell never leaves
its well: its whole outline stays at least ``stage_drift_max_px + 1`` px from
the walls, so it lies inside its well's box in every frame whatever the drift.

All randomness comes from the generator handed in; nothing here touches pixels
except through ``CellLook`` (``phase.py`` renders it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from livecell.simulation.nanowell_cells import (
    CONJUGATED,
    HARMONICS,
    MODE_DECAY,
    PATHWAYS,
    SEEK,
    STILL,
    TEXTURE_BANK_PX,
    WANDER,
    Cell,
    cell_look,
    progress,
)
from livecell.simulation.nanowell_params import NanowellParams, Range
from livecell.simulation.phase import Bump, CellLook, extent_px, smooth_noise
from livecell.simulation.scene import (
    APOPTOSIS,
    EFFECTOR,
    NECROPTOSIS,
    NECROSIS,
    TARGET,
    Death,
    Well,
    well_id,
)


@dataclass
class PositionWorld:
    """The cells of one position and their history (``advance`` one frame at a time)."""

    p: NanowellParams
    rng: np.random.Generator
    origin_xy: tuple[float, float] = (0.0, 0.0)
    wells: list[Well] = field(default_factory=list)
    cells: dict[int, Cell] = field(default_factory=dict)
    deaths: list[Death] = field(default_factory=list)
    kills: dict[int, int] = field(default_factory=dict)
    track_wells: dict[int, str] = field(default_factory=dict)
    offsets: list[tuple[float, float]] = field(default_factory=list)
    focus_px: list[float] = field(default_factory=list)
    flicker: list[float] = field(default_factory=list)
    banks: tuple[np.ndarray, ...] = ()
    next_track: int = 1
    focus_phase: float = 0.0

    # ----- set-up -----
    @classmethod
    def create(cls, p: NanowellParams, rng: np.random.Generator) -> PositionWorld:
        world = cls(p, rng)
        lim = p.lattice_offset_max_px
        world.origin_xy = (float(rng.uniform(-lim, lim)), float(rng.uniform(-lim, lim)))
        world.wells = lattice(p, world.origin_xy)
        world.banks = (
            smooth_noise(rng, (TEXTURE_BANK_PX, TEXTURE_BANK_PX), 1.1),
            smooth_noise(rng, (TEXTURE_BANK_PX, TEXTURE_BANK_PX), 1.1),
            smooth_noise(rng, (TEXTURE_BANK_PX, TEXTURE_BANK_PX), 0.7),
        )
        world.focus_phase = float(rng.uniform(0, 2 * np.pi))
        world.offsets.append((0.0, 0.0))
        world._acquisition_state(0)
        for index in range(len(world.wells)):
            n = min(int(rng.poisson(p.mean_cells_per_well)), p.max_cells_per_well)
            for _ in range(n):
                kind = EFFECTOR if rng.random() < p.effector_fraction else TARGET
                world._place(world._new_cell(index, kind, 0.0, 0.0, 0))
        world._settle(0)
        return world

    def _new_cell(
        self, well: int, kind: str, x: float, y: float, t: int, radius_px: float | None = None
    ) -> Cell:
        p, rng = self.p, self.rng
        eff = kind == EFFECTOR
        goal = _draw(rng, p.effector_radius_um if eff else p.target_radius_um) / p.pixel_size_um
        speed = _draw(rng, p.effector_speed_um_per_min if eff else p.target_speed_um_per_min)
        sd = 0.085 if eff else 0.035
        margin = math.ceil(p.max_cell_extent_px()) + 2
        cell = Cell(
            track=self.next_track,
            well=well,
            cell_type=kind,
            x=x,
            y=y,
            radius_px=goal if radius_px is None else radius_px,
            radius_goal_px=goal,
            speed_px_per_min=speed / p.pixel_size_um,
            heading=float(rng.uniform(0, 2 * np.pi)),
            harmonics=rng.normal(0.0, sd, (HARMONICS, 2)) * MODE_DECAY,
            harmonic_sd=sd,
            polarity=float(rng.uniform(0.15, 0.35)) if eff else 0.0,
            thickness=float(np.exp(rng.normal(0.0, p.contrast_variation))),
            glow=float(rng.uniform(0.0, 0.15)),
            texture_amp=p.texture_amplitude * float(rng.uniform(0.6, 1.4)),
            tex_offset=_bank_offset(rng, margin),
            tex_phase=float(rng.uniform(0, 2 * np.pi)),
            tex_rate=float(rng.uniform(0.05, 0.25)),
            nucleus=(
                float(rng.uniform(-0.2, 0.2)),
                float(rng.uniform(-0.2, 0.2)),
                float(rng.uniform(0.1, 0.4)),
            ),
            defocus_px=float(rng.uniform(0.0, 0.9)),
            label_level=float(np.exp(rng.normal(0.0, 0.3))),
            born_t=t,
            activity=float(rng.uniform(0.5, 1.1)),
        )
        self.track_wells[cell.track] = self.wells[well].well
        self.next_track += 1
        return cell

    def _place(self, cell: Cell) -> None:
        """Drop a new cell at a free spot of its well (best of a few random tries)."""
        lo_x, lo_y, hi_x, hi_y = self._room(cell, cell.radius_px * 1.25)
        best, best_gap = (0.5 * (lo_x + hi_x), 0.5 * (lo_y + hi_y)), -np.inf
        others = [c for c in self.cells.values() if c.well == cell.well]
        for _ in range(30):
            x, y = float(self.rng.uniform(lo_x, hi_x)), float(self.rng.uniform(lo_y, hi_y))
            gap = min(
                (math.hypot(x - o.x, y - o.y) - (o.radius_px + cell.radius_px) for o in others),
                default=np.inf,
            )
            if gap > best_gap:
                best, best_gap = (x, y), gap
            if gap > 4:
                break
        cell.x, cell.y = best
        self.cells[cell.track] = cell

    def _room(self, cell: Cell, extent: float) -> tuple[float, float, float, float]:
        """Where the centre of a cell of this extent may be, chip frame."""
        w = self.wells[cell.well]
        keep = math.ceil(self.p.stage_drift_max_px) + 1.5 + extent
        return w.x0 + keep, w.y0 + keep, w.x1 - 1 - keep, w.y1 - 1 - keep

    def look(self, cell: Cell, t: int) -> CellLook:
        return cell_look(
            cell,
            t,
            p=self.p,
            well=self.wells[cell.well],
            offset_xy=self.offsets[t],
            banks=self.banks,
        )

    # ----- per frame -----
    def advance(self, t: int) -> dict[int, int]:
        """Move the world from frame ``t - 1`` to ``t``; returns daughter -> parent."""
        self._acquisition_state(t)
        self._behave(t)
        substeps = max(1, math.ceil(self.p.frame_interval_min / 1.0))
        for _ in range(substeps):
            self._move(self.p.frame_interval_min / substeps)
        parents = self._fates(t)
        self._reshape(t)
        self._settle(t)
        return parents

    def _acquisition_state(self, t: int) -> None:
        p, rng = self.p, self.rng
        if t > 0:
            prev = self.offsets[-1]
            self.offsets.append(
                tuple(  # type: ignore[arg-type]
                    _reflect(
                        v + float(rng.normal(0.0, p.stage_drift_step_px)), p.stage_drift_max_px
                    )
                    for v in prev
                )
            )
        lo, hi = p.focus_blur_px
        wave = 0.5 + 0.5 * math.sin(
            2 * math.pi * t / max(p.focus_period_frames, 1e-6) + self.focus_phase
        )
        self.focus_px.append(max(0.0, lo + (hi - lo) * wave + float(rng.normal(0.0, 0.05))))
        self.flicker.append(1.0 + float(rng.normal(0.0, 0.004)))

    def _behave(self, t: int) -> None:
        p, rng = self.p, self.rng
        dt = p.frame_interval_min
        for cell in self.cells.values():
            cell.activity = float(np.clip(cell.activity + rng.normal(0.0, 0.15), 0.4, 1.15))
            if cell.cell_type != EFFECTOR or cell.pathway or cell.rounding_t >= 0:
                continue
            partner = self.cells.get(cell.partner)
            if cell.mode == CONJUGATED and (t >= cell.busy_until_t or partner is None):
                cell.mode = WANDER
                cell.heading = cell.attach_angle
                cell.busy_until_t = t + max(1, round(_draw(rng, (5.0, 30.0)) / dt))
            elif cell.mode == SEEK and (partner is None or partner.pathway):
                cell.mode = WANDER
            elif (
                cell.mode == WANDER
                and t >= cell.busy_until_t
                and rng.random() < 1.0 - math.exp(-p.seek_rate_per_h * dt / 60.0)
            ):
                choice = self._pick_target(cell)
                if choice is not None:
                    cell.mode, cell.partner = SEEK, choice

    def _pick_target(self, cell: Cell) -> int | None:
        options = [
            c
            for c in self.cells.values()
            if c.well == cell.well and c.cell_type == TARGET and not c.pathway
        ]
        if not options:
            return None
        weights = np.array([1.0 / (1.0 + math.hypot(c.x - cell.x, c.y - cell.y)) for c in options])
        pick = int(self.rng.choice(len(options), p=weights / weights.sum()))
        return options[pick].track

    def _move(self, h_min: float) -> None:
        rng = self.rng
        for cell in self.cells.values():
            if cell.pathway or cell.rounding_t >= 0:
                continue
            step = cell.speed_px_per_min * h_min * cell.activity
            partner = self.cells.get(cell.partner)
            if cell.mode == CONJUGATED and partner is not None:
                cell.attach_angle += float(rng.normal(0.0, 0.12))
                reach = 0.8 * (cell.radius_px + partner.radius_px)
                cell.x = partner.x + reach * math.cos(cell.attach_angle)
                cell.y = partner.y + reach * math.sin(cell.attach_angle)
                cell.heading = cell.attach_angle + math.pi
                continue
            if cell.mode == SEEK and partner is not None:
                gx, gy = partner.x - cell.x, partner.y - cell.y
                dist = math.hypot(gx, gy)
                touch = 0.9 * (cell.radius_px + partner.radius_px)
                cell.heading = math.atan2(gy, gx) + float(rng.normal(0.0, 0.25))
                if dist - step <= touch:
                    cell.mode = CONJUGATED
                    cell.attach_angle = math.atan2(-gy, -gx)
                    span = _draw(rng, self.p.conjugation_min)
                    cell.busy_until_t = (
                        len(self.offsets) - 1 + max(1, round(span / self.p.frame_interval_min))
                    )
                    step = max(dist - touch, 0.0)
            else:
                turn = 0.5 if cell.cell_type == EFFECTOR else 1.2
                cell.heading += float(rng.normal(0.0, turn))
            cell.x += step * math.cos(cell.heading)
            cell.y += step * math.sin(cell.heading)
            lo_x, lo_y, hi_x, hi_y = self._room(cell, cell.extent_px or cell.radius_px * 1.4)
            if not lo_x <= cell.x <= hi_x:
                cell.heading = math.pi - cell.heading
            if not lo_y <= cell.y <= hi_y:
                cell.heading = -cell.heading
            cell.x = min(max(cell.x, lo_x), hi_x)
            cell.y = min(max(cell.y, lo_y), hi_y)

    def _fates(self, t: int) -> dict[int, int]:
        p, rng = self.p, self.rng
        dt_h = p.frame_interval_min / 60.0
        parents: dict[int, int] = {}
        for cell in list(self.cells.values()):
            if cell.pathway == NECROSIS and t >= cell.gone_t:
                del self.cells[cell.track]  # lysed: the track ends
                continue
            if cell.division_t == t:
                parents.update(self._divide(cell, t))
                continue
            if cell.pathway:
                continue
            if cell.scheduled is not None and cell.scheduled[0] <= t:
                self.start_death(cell, cell.scheduled[1], t)
            elif rng.random() < 1.0 - math.exp(-p.spontaneous_death_per_h * dt_h):
                self.start_death(cell, _pathway(rng, p.spontaneous_pathway_weights), t)
            elif (
                cell.rounding_t < 0
                and cell.scheduled is None
                and cell.mode != CONJUGATED
                and rng.random() < 1.0 - math.exp(-p.mitosis_per_h * dt_h)
                and sum(c.well == cell.well for c in self.cells.values()) < p.max_cells_per_well
            ):
                cell.rounding_t = t
                cell.division_t = t + max(
                    1, round(_draw(rng, p.mitosis_rounding_min) / (dt_h * 60))
                )
        return parents

    def start_death(self, cell: Cell, pathway: str, t: int) -> None:
        p, rng = self.p, self.rng
        dt = p.frame_interval_min

        def frames(span: Range) -> int:
            return max(1, round(_draw(rng, span) / dt))

        cell.pathway, cell.onset_t, cell.scheduled = pathway, t, None
        cell.rounding_t = cell.division_t = -1
        cell.mode = STILL
        if pathway == APOPTOSIS:
            cell.fate_span_min = _draw(rng, p.apoptosis_shrink_min)
            cell.fate_size = float(rng.uniform(0.15, 0.3))
            cell.annexin_t = t + frames(p.annexin_delay_min)
            cell.pi_t = cell.annexin_t + frames(p.secondary_necrosis_min)
            cell.marker_t = cell.annexin_t
        else:
            span = p.necroptosis_rupture_min if pathway == NECROPTOSIS else p.necrosis_rupture_min
            cell.rupture_t = t + frames(span)
            cell.annexin_t = cell.pi_t = cell.marker_t = cell.rupture_t
            cell.fate_size = float(
                rng.uniform(0.15, 0.3) if pathway == NECROPTOSIS else rng.uniform(0.25, 0.4)
            )
            if pathway == NECROSIS:
                cell.gone_t = cell.rupture_t + frames(p.necrosis_lysis_min)
        self.deaths.append(Death(cell.track, self.wells[cell.well].well, pathway, t, cell.marker_t))

    def in_contact(self, a: int, b: int, t: int) -> None:
        """Cells ``a`` and ``b`` touch at frame ``t``: an effector may start killing a target."""
        ca, cb = self.cells[a], self.cells[b]
        if ca.cell_type == cb.cell_type:
            return
        eff, tgt = (ca, cb) if ca.cell_type == EFFECTOR else (cb, ca)
        if eff.pathway or tgt.pathway or tgt.scheduled is not None:
            return
        hazard = self.p.kill_rate_per_contact_h * self.p.frame_interval_min / 60.0
        if self.rng.random() < 1.0 - math.exp(-hazard):
            delay = max(
                1, round(_draw(self.rng, self.p.kill_delay_min) / self.p.frame_interval_min)
            )
            pathway = _pathway(self.rng, self.p.kill_pathway_weights)
            tgt.scheduled = (t + delay, pathway)
            tgt.rounding_t = tgt.division_t = -1
            self.kills[tgt.track] = eff.track

    def _divide(self, cell: Cell, t: int) -> dict[int, int]:
        del self.cells[cell.track]
        axis = float(self.rng.uniform(0, 2 * np.pi))
        r = cell.radius_px * 0.8
        born = {}
        for sign in (1.0, -1.0):
            x = cell.x + sign * 0.75 * r * math.cos(axis)
            y = cell.y + sign * 0.75 * r * math.sin(axis)
            child = self._new_cell(cell.well, cell.cell_type, x, y, t, radius_px=r)
            child.radius_goal_px = cell.radius_goal_px * float(self.rng.uniform(0.9, 1.1))
            child.glow = cell.glow + 0.2
            child.harmonics *= 0.3
            child.activity = 0.4  # freshly divided cells stay close a while
            self.cells[child.track] = child
            born[child.track] = cell.track
        return born

    def _reshape(self, t: int) -> None:
        p, rng = self.p, self.rng
        dt = p.frame_interval_min
        for cell in self.cells.values():
            tau = 10.0 if cell.cell_type == EFFECTOR else 60.0
            if cell.pathway == NECROSIS and t >= cell.rupture_t:
                tau = 5.0
            keep = math.exp(-dt / tau)
            sd = cell.harmonic_sd * (2.0 if cell.pathway and t >= cell.rupture_t >= 0 else 1.0)
            noise = rng.normal(0.0, sd * math.sqrt(1 - keep * keep), cell.harmonics.shape)
            noise *= MODE_DECAY
            cell.harmonics = cell.harmonics * keep + noise
            cell.radius_px += (cell.radius_goal_px - cell.radius_px) * (1 - math.exp(-dt / 90.0))
            cell.glow = max(cell.glow - 0.02, 0.0) if cell.glow > 0.15 else cell.glow
            if cell.pathway == APOPTOSIS:
                n = int(rng.poisson(1.0 + 5.0 * progress(cell, t, self.p)))
                cell.blebs = tuple(
                    Bump(
                        float(rng.uniform(0, 2 * np.pi)),
                        float(rng.uniform(0.05, 0.15)),
                        float(rng.uniform(25.0, 60.0)),
                    )
                    for _ in range(n)
                )
                cell.fine_offset = _bank_offset(rng, math.ceil(p.max_cell_extent_px()) + 2)

    def _settle(self, t: int) -> None:
        """Keep conjugates together, push overlapping cells apart, keep all inside wells."""
        by_well: dict[int, list[Cell]] = {}
        for cell in self.cells.values():
            by_well.setdefault(cell.well, []).append(cell)
            cell.extent_px = extent_px(self.look(cell, t)) + 1.5
        for group in by_well.values():
            for _ in range(4):
                for i, a in enumerate(group):
                    for b in group[i + 1 :]:
                        _push_apart(a, b)
                for cell in group:
                    lo_x, lo_y, hi_x, hi_y = self._room(cell, cell.extent_px)
                    cell.x = min(max(cell.x, lo_x), hi_x)
                    cell.y = min(max(cell.y, lo_y), hi_y)


def lattice(p: NanowellParams, origin_xy: tuple[float, float]) -> list[Well]:
    """The wells fully inside the frame, whatever the drift, numbered row-major from 0."""
    size, pitch, wall = p.frame_size_px, p.pitch_px, p.wall_px
    keep = math.ceil(p.stage_drift_max_px)

    def spans(origin: float) -> list[tuple[int, int]]:
        out = []
        for k in range(-2, p.wells_per_side + 2):
            lo = math.ceil(origin + k * pitch + wall / 2)
            hi = math.ceil(origin + (k + 1) * pitch - wall / 2)
            if lo - keep >= 0 and hi + keep <= size:
                out.append((lo, hi))
        return out

    rows, cols = spans(origin_xy[1]), spans(origin_xy[0])
    return [
        Well(well_id(r, c), r, c, x0, y0, x1, y1)
        for r, (y0, y1) in enumerate(rows)
        for c, (x0, x1) in enumerate(cols)
    ]


def _push_apart(a: Cell, b: Cell) -> None:
    conj = (a.mode == CONJUGATED and a.partner == b.track) or (
        b.mode == CONJUGATED and b.partner == a.track
    )
    need = (0.8 if conj else 0.72) * (a.radius_px + b.radius_px)
    gx, gy = b.x - a.x, b.y - a.y
    dist = math.hypot(gx, gy)
    if dist >= need:
        return
    if dist < 1e-6:
        gx, gy, dist = 1.0, 0.0, 1.0
    # the dead and dividing are pushed less, the motile more
    wa = 0.3 if (a.pathway or a.rounding_t >= 0) else 1.0
    wb = 0.3 if (b.pathway or b.rounding_t >= 0) else 1.0
    shift = (need - dist) / dist
    a.x -= gx * shift * wa / (wa + wb)
    a.y -= gy * shift * wa / (wa + wb)
    b.x += gx * shift * wb / (wa + wb)
    b.y += gy * shift * wb / (wa + wb)


def _draw(rng: np.random.Generator, span: Range) -> float:
    return float(rng.uniform(span[0], span[1]))


def _pathway(rng: np.random.Generator, weights: tuple[float, float, float]) -> str:
    w = np.asarray(weights, dtype=np.float64)
    return PATHWAYS[int(rng.choice(3, p=w / w.sum()))]


def _bank_offset(rng: np.random.Generator, margin: int) -> tuple[int, int]:
    hi = max(TEXTURE_BANK_PX - margin, margin + 1)
    return int(rng.integers(margin, hi)), int(rng.integers(margin, hi))


def _reflect(v: float, limit: float) -> float:
    if limit <= 0:
        return 0.0
    while abs(v) > limit:
        v = 2 * limit - v if v > limit else -2 * limit - v
    return v
