"""The holotomography simulator: refractive-index tomograms of HeLa cells dying in five ways.

One ``HolotomoSimulator`` holds every position's field of cells; ``step()`` moves
the cells on by one frame interval and returns, per position, the RI volume
(``"ZYX"`` float32, or its maximum intensity projection ``"YX"`` with
``mip=True``) with its exact ground truth:

- ``labels``: each cell's 2D footprint (int32, track ids); where cells overlap,
  the pixel belongs to the cell whose top is highest (what a MIP shows);
- ``cells``: one ``CellTruth`` per cell with at least one label pixel (all of them
  in practice: a cell hidden under others takes back the pixels nearest its
  centre, see ``compose``); ``x``, ``y`` and
  ``area`` are those of its label pixels; ``cell_type`` is ``"target"`` for every
  cell (one cell line, no effectors; treatment shows in the patch states);
  ``state`` is ``live`` or the death pathway from the onset frame on;
- ``patches``: one per 160 px patch of the grid from pixel 0 (``size_px // 160``
  per side): ``empty`` where no label pixel falls in the patch, else the patch
  state of the cell with the most pixels in it (ties: the lower track id).

Deaths (``summary()``): ``onset_t`` is the first frame showing the change,
``marker_t`` the first frame at which Annexin V (apoptosis) or propidium iodide
(necroptosis, necrosis) would be positive, which may lie beyond the last frame.
Necroptotic RI changes start ``necroptosis_lead_min`` (2 to 4 h) before PI.
Onsets before frame 0 (``onset_range_min`` below 0) are recorded as frame 0, and
so is a marker already positive then.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from livecell.simulation.holotomo_cells import HeLaCell, Look, cell_state, draw_cell, look_at
from livecell.simulation.holotomo_optics import NoiseBlock, background, make_texture, slow_field
from livecell.simulation.holotomo_params import HolotomoParams
from livecell.simulation.holotomo_render import (
    CellRender,
    Optics,
    compose,
    fill_volume,
    render_cell,
)
from livecell.simulation.scene import (
    DEFAULT_PATCH_SIZE_PX,
    EMPTY_PATCH,
    TARGET,
    CellTruth,
    Death,
    PatchTruth,
    SimFrame,
    SimSummary,
)

__all__ = ["HolotomoParams", "HolotomoSimulator", "patch_truth"]

PLACEMENT_TRIES = 40  # candidate positions per cell when seeding a field
MIN_SPACING = 0.75  # centres at least this fraction of the two radii apart, where possible
PERSISTENCE = 0.8  # velocity kept from one frame to the next
MAX_PUSH = 0.05  # most a crowded cell is pushed in one frame, as a fraction of its radius


@dataclass
class _Field:
    """One position: its cells and its fixed optics."""

    name: str
    cells: list[HeLaCell]
    base: npt.NDArray[np.float32]  # medium RI + slow background variation
    ripple_wave: tuple[float, float]
    ripple_phase: float
    looks: dict[int, Look] = field(default_factory=dict)


class HolotomoSimulator:
    kind = "holotomo"

    def __init__(self, params: HolotomoParams, *, seed: int) -> None:
        self.params = params
        self._rng = np.random.default_rng(seed)
        p = params
        self._optics = Optics(p.size_px, p.z_slices, p.pixel_size_um, p.z_step_um, p.glass_z())
        self.positions: tuple[str, ...] = tuple(f"Pos{i}" for i in range(p.positions))
        self._texture = make_texture(self._rng)
        self._noise = (
            NoiseBlock(self._rng, z=p.z_slices, tile=min(512, p.size_px), sd_ri=p.noise_ri)
            if p.noise_ri > 0
            else None
        )
        self._fields = [self._new_field(name) for name in self.positions]
        self._t = 0

    # ------------------------------------------------------------ set-up

    def _new_field(self, name: str) -> _Field:
        p, rng = self.params, self._rng
        size = p.size_px
        medium = p.medium_ri + p.medium_ri_sd * float(rng.standard_normal())
        base = slow_field(rng, size, p.background_ri) + np.float32(medium)
        period = rng.uniform(*p.ripple_period_px)
        heading = rng.uniform(0, 2 * math.pi)
        wave = (2 * math.pi / period * math.cos(heading), 2 * math.pi / period * math.sin(heading))
        n = p.cells_per_position()
        radii = rng.uniform(*p.radius_um, n) / p.pixel_size_um
        placed = np.empty((0, 3))
        cells = []
        for i in range(n):
            cand = rng.uniform(0, size, (PLACEMENT_TRIES, 2))
            if len(placed):
                gap = np.hypot(
                    cand[:, None, 0] - placed[None, :, 0], cand[:, None, 1] - placed[None, :, 1]
                ) / (radii[i] + placed[None, :, 2])
                closest = gap.min(axis=1)
                ok = np.flatnonzero(closest >= MIN_SPACING)
                pick = int(ok[0]) if ok.size else int(np.argmax(closest))
            else:
                pick = 0
            x, y = (float(v) for v in cand[pick])
            placed = np.vstack([placed, [x, y, radii[i]]])
            cells.append(draw_cell(rng, i + 1, x, y, float(radii[i]), p))
        return _Field(name, cells, base, wave, float(rng.uniform(0, 2 * math.pi)))

    # ------------------------------------------------------------ time

    def step(self) -> list[SimFrame]:
        """The next time point (t = 0, 1, ...): one frame per position."""
        t = self._t
        frames = [self._frame(f, t) for f in self._fields]
        self._t += 1
        return frames

    def _move(self, fld: _Field) -> None:
        """One frame of migration: persistent random walk, slowed by dying, pushed apart by
        neighbours, reflected at the field's edges."""
        rng, size = self._rng, self.params.size_px
        cells = fld.cells
        if not cells:
            return
        kick = rng.standard_normal((len(cells), 2))
        turn = rng.normal(0.0, 0.03, len(cells))
        ruffle = rng.normal(0.0, 0.12, (len(cells), cells[0].harmonic_phase.size))
        keep = math.sqrt(1 - PERSISTENCE**2) / math.sqrt(2)
        mob = np.array([fld.looks[c.track].motility for c in cells])
        for i, c in enumerate(cells):
            c.vx = PERSISTENCE * c.vx + keep * c.speed_px * kick[i, 0]
            c.vy = PERSISTENCE * c.vy + keep * c.speed_px * kick[i, 1]
            c.x += c.vx * mob[i]
            c.y += c.vy * mob[i]
            c.angle_rad += turn[i] * mob[i]
            c.harmonic_phase = c.harmonic_phase + ruffle[i] * mob[i]
        xy = np.array([[c.x, c.y] for c in cells])
        rad = np.array([c.radius_px * fld.looks[c.track].radius_scale for c in cells])
        diff = xy[:, None, :] - xy[None, :, :]
        dist = np.hypot(diff[..., 0], diff[..., 1]) + np.eye(len(cells))
        overlap = np.maximum(0.85 * (rad[:, None] + rad[None, :]) - dist, 0.0)
        np.fill_diagonal(overlap, 0.0)
        push = (diff / dist[..., None] * (0.25 * overlap)[..., None]).sum(axis=1)
        reach = np.hypot(push[:, 0], push[:, 1])
        push *= (np.minimum(reach, MAX_PUSH * rad) / np.maximum(reach, 1e-9))[:, None]
        xy += push * mob[:, None]
        for i, c in enumerate(cells):
            x, y = float(xy[i, 0]), float(xy[i, 1])
            if not 0 <= x < size:
                c.vx = -c.vx
                x = min(max(-x if x < 0 else 2 * (size - 1) - x, 0.0), size - 1.0)
            if not 0 <= y < size:
                c.vy = -c.vy
                y = min(max(-y if y < 0 else 2 * (size - 1) - y, 0.0), size - 1.0)
            c.x, c.y = x, y

    def _frame(self, fld: _Field, t: int) -> SimFrame:
        p, rng = self.params, self._rng
        if t > 0:
            self._move(fld)
            fld.ripple_phase += float(rng.normal(0.6, 0.3))
        minutes = t * p.frame_interval_min
        fld.looks = {c.track: look_at(c, minutes, p.treated_effect) for c in fld.cells}
        renders = [
            r
            for c in fld.cells
            if (r := render_cell(c, fld.looks[c.track], self._optics, self._texture)) is not None
        ]
        labels = compose(renders, p.size_px)
        volume = fill_volume(renders, labels, self._optics)
        if self._noise is not None:
            self._noise.add_to(volume, rng)
        volume += background(
            labels,
            base=fld.base,
            ripple_ri=p.ripple_ri,
            ripple_wave=fld.ripple_wave,
            ripple_phase=fld.ripple_phase,
            halo_ri=p.halo_ri,
        )
        image = volume.max(axis=0) if p.mip else volume
        states = {track: look.state for track, look in fld.looks.items()}
        return SimFrame(
            position=fld.name,
            t=t,
            image=image,
            axes="YX" if p.mip else "ZYX",
            pixel_size_um=p.pixel_size_um,
            labels=labels,
            cells=_cell_truth(renders, labels, fld.looks),
            patches=patch_truth(labels, states),
        )

    def summary(self) -> SimSummary:
        """Deaths that began by the last frame taken, per position (wells and contacts: none)."""
        last = self._t - 1
        interval = self.params.frame_interval_min
        deaths: dict[str, tuple[Death, ...]] = {}
        for fld in self._fields:
            rows = []
            for c in fld.cells:
                if not c.pathway:
                    continue
                onset = max(0, math.ceil(c.onset_min / interval))
                if onset > last:
                    continue
                marker = max(0, math.ceil(c.marker_min / interval))
                rows.append(Death(c.track, "", c.pathway, onset, marker))
            deaths[fld.name] = tuple(rows)
        return SimSummary(wells={}, deaths=deaths, contacts={})


def _cell_truth(
    renders: list[CellRender], labels: npt.NDArray[np.int32], looks: dict[int, Look]
) -> tuple[CellTruth, ...]:
    out = []
    for r in renders:
        ys, xs = np.nonzero(labels[r.box] == r.track)
        if xs.size == 0:
            continue
        out.append(
            CellTruth(
                track=r.track,
                well="",
                x=float(xs.mean()) + r.x0,
                y=float(ys.mean()) + r.y0,
                area=int(xs.size),
                cell_type=TARGET,
                state=cell_state(looks[r.track]),
            )
        )
    return tuple(out)


def patch_truth(
    labels: npt.NDArray[np.int32],
    states: dict[int, str],
    patch_px: int = DEFAULT_PATCH_SIZE_PX,
) -> tuple[PatchTruth, ...]:
    """Per patch of the grid from pixel 0: the state of the cell with most pixels, or empty."""
    rows, cols = labels.shape[0] // patch_px, labels.shape[1] // patch_px
    out = []
    for row in range(rows):
        for col in range(cols):
            block = labels[
                row * patch_px : (row + 1) * patch_px, col * patch_px : (col + 1) * patch_px
            ]
            counts = np.bincount(block.reshape(-1))
            counts[0] = 0
            if counts.size <= 1 or counts.max() == 0:
                out.append(PatchTruth(row, col, EMPTY_PATCH))
            else:
                out.append(PatchTruth(row, col, states[int(np.argmax(counts))]))
    return tuple(out)
