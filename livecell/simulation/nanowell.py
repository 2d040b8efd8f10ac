"""The TIMING nanowell simulator: phase-contrast frames of effector and target cells in wells.

One ``NanowellSimulator`` yields, per ``step()``, one ``SimFrame`` per position
for the next time point, with exact ground truth::

    sim = NanowellSimulator(NanowellParams(frame_size_px=512, wells_per_side=2), seed=3)
    for _ in range(72):
        frames = sim.step()          # [SimFrame for Pos0, ...]
    truth = sim.summary()            # wells, deaths, contacts so far

What it models (``nanowell_params.py`` the knobs, ``nanowell_world.py`` the cells'
dynamics, ``nanowell_cells.py`` their looks over time, ``phase.py`` the optics):

- a square lattice of nanowells with visible PDMS walls; only wells that stay
  wholly inside the frame whatever the drift are wells (``summary().wells``);
  the lattice goes on past the frame edge, and a well the edge cuts (with
  other sizes or lattice offsets than the defaults) is drawn, kept empty and
  not listed;
- 0 to ``max_cells_per_well`` cells per well (Poisson loading); effectors small,
  irregular and polarised (outline = low-order Fourier modes plus a leading-edge
  bulge and a uropod), crawling at 5 to 10 um/min (turns and walls make the
  frame-to-frame displacement smaller), seeking targets and staying on them a
  while; targets larger, rounder, slow; no cell ever leaves its well;
- while an effector touches a live target, the target is doomed at
  ``kill_rate_per_contact_h`` (long conjugations kill, brushes rarely); death
  follows after a random delay; a little spontaneous death besides; three pathways:
  apoptosis (slow shrinkage, blebbing, denser texture, Annexin V at
  ``marker_t``, PI much later), necroptosis (swelling, then rupture = PI at
  ``marker_t``, leaving a faint ghost), necrosis (fast swelling, rupture,
  fading, lysis: the cell disappears and its track ends); the first frames
  after onset differ from live cells by a few percent only;
- mitosis: the cell rounds up, then its track ends and two daughters with new
  track ids appear (``SimFrame.parents``);
- phase contrast: dark bodies with bright halos, textured cytoplasm, walls with
  halos, debris, uneven illumination, slow focus drift, shot and read noise,
  and a rigid stage drift of the whole field (walls included);
- optional fluorescence (``channels=True``): Annexin V, PI, effector and target
  dyes, as "CYX" with the phase image first.

Ground truth conventions:

- ``labels`` is int32 YX, 0 background, else the track id; where cells overlap,
  the smaller cell (drawn on top) owns the pixels; every present cell owns at
  least one pixel; ``CellTruth.x``, ``y`` are the mean column and row index of
  its pixels, ``area`` their count.
- Well boxes (``Well.x0, y0, x1, y1``) are the interiors at t = 0, pixel
  indices ``[y0:y1, x0:x1]`` (x1, y1 exclusive). The stage drift never exceeds
  ``stage_drift_max_px`` per axis and cells keep that far from the walls, so
  every cell pixel of every frame lies inside its well's box.
  ``stage_offset_px(position, t)`` gives the exact shift of frame t.
- A contact is two cells of one well whose full outlines (occluded parts
  included) touch or overlap (8-connected); ``end_t`` is the last frame in
  contact. ``state`` is the pathway from ``onset_t`` on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from livecell.simulation.nanowell_params import NanowellParams
from livecell.simulation.nanowell_world import PositionWorld
from livecell.simulation.phase import (
    FLUORESCENCE_CHANNELS,
    Background,
    Buffers,
    RenderedCell,
    build_background,
    render_cell,
    render_fluorescence,
    render_phase,
)
from livecell.simulation.scene import LIVE, CellTruth, Contact, SimFrame, SimSummary, Well

__all__ = ["CHANNELS", "NanowellParams", "NanowellSimulator"]

CHANNELS = ("phase", *FLUORESCENCE_CHANNELS)


@dataclass(eq=False)
class _Position:
    name: str
    world: PositionWorld
    background: Background
    noise_rng: np.random.Generator
    fluo_rng: np.random.Generator
    buffers: Buffers
    active: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)  # start, last
    closed: list[Contact] = field(default_factory=list)

    def contact(self, pair: tuple[int, int], start: int, last: int) -> Contact:
        return Contact(self.world.track_wells[pair[0]], pair[0], pair[1], start, last)


class NanowellSimulator:
    """Seeded, deterministic: the same params and seed give the same frames and truth."""

    kind = "nanowell"

    def __init__(self, params: NanowellParams, *, seed: int) -> None:
        self.params = params
        root = np.random.default_rng(seed)
        # independent streams per position: the world (cells, drift, focus), the camera
        # noise, the fluorescence noise; channels on or off never changes the rest
        streams = root.spawn(3 * params.positions)
        self.positions: tuple[str, ...] = tuple(f"Pos{i}" for i in range(params.positions))
        self._pos: list[_Position] = []
        for i, name in enumerate(self.positions):
            world_rng = streams[3 * i]
            world = PositionWorld.create(params, world_rng)
            boxes = [(w.x0, w.y0, w.x1, w.y1) for w in world.wells]
            background = build_background(params, world.origin_xy, boxes, world_rng)
            self._pos.append(
                _Position(
                    name,
                    world,
                    background,
                    streams[3 * i + 1],
                    streams[3 * i + 2],
                    Buffers(params.frame_size_px),
                )
            )
        self._t = 0

    @property
    def t(self) -> int:
        """The time point the next ``step()`` yields."""
        return self._t

    def step(self) -> list[SimFrame]:
        frames = [self._frame(pos, self._t) for pos in self._pos]
        self._t += 1
        return frames

    def summary(self) -> SimSummary:
        last = self._t - 1
        wells: dict[str, tuple[Well, ...]] = {}
        deaths = {}
        contacts = {}
        for pos in self._pos:
            wells[pos.name] = tuple(pos.world.wells)
            deaths[pos.name] = tuple(
                sorted(
                    (d for d in pos.world.deaths if d.onset_t <= last),
                    key=lambda d: (d.onset_t, d.track),
                )
            )
            ongoing = [pos.contact(pair, start, end) for pair, (start, end) in pos.active.items()]
            contacts[pos.name] = tuple(
                sorted(pos.closed + ongoing, key=lambda c: (c.start_t, c.track_a, c.track_b))
            )
        return SimSummary(wells=wells, deaths=deaths, contacts=contacts)

    def stage_offset_px(self, position: str, t: int) -> tuple[float, float]:
        """(dx, dy) of frame ``t``: chip features at (x, y) at t = 0 are at (x + dx, y + dy)."""
        return self._by_name(position).world.offsets[t]

    def kills(self, position: str) -> dict[int, int]:
        """Target track -> the effector track whose contact scheduled its death."""
        return dict(self._by_name(position).world.kills)

    def _by_name(self, position: str) -> _Position:
        for pos in self._pos:
            if pos.name == position:
                return pos
        raise KeyError(position)

    # ----- one frame of one position -----
    def _frame(self, pos: _Position, t: int) -> SimFrame:
        p, world = self.params, pos.world
        parents = world.advance(t) if t > 0 else {}
        looks = {cell.track: world.look(cell, t) for cell in world.cells.values()}
        rendered = []
        for look in looks.values():
            cell = render_cell(look, p, p.frame_size_px)
            if cell is None:
                raise RuntimeError(f"{pos.name} t={t}: track {look.track} rendered no pixels")
            rendered.append(cell)
        self._contacts(pos, rendered, t)

        size = p.frame_size_px
        stack = np.empty((len(CHANNELS) if p.channels else 1, size, size), np.uint16)
        render_phase(
            pos.background,
            rendered,
            offset_xy=world.offsets[t],
            focus_px=world.focus_px[t],
            lamp=world.flicker[t],
            buffers=pos.buffers,
            p=p,
            rng=pos.noise_rng,
            out=stack[0],
        )
        if p.channels:
            render_fluorescence(
                looks,
                rendered,
                pos.background.electrons,
                out=stack[1:],
                buffers=pos.buffers,
                p=p,
                rng=pos.fluo_rng,
            )

        labels, order = _paint(rendered, p.frame_size_px)
        cells = []
        for cell in order:
            c = world.cells[cell.track]
            h, w = cell.mask.shape
            ys, xs = np.nonzero(
                labels[cell.mask_y0 : cell.mask_y0 + h, cell.mask_x0 : cell.mask_x0 + w]
                == cell.track
            )
            cells.append(
                CellTruth(
                    track=cell.track,
                    well=world.wells[c.well].well,
                    x=float(xs.mean()) + cell.mask_x0,
                    y=float(ys.mean()) + cell.mask_y0,
                    area=int(xs.size),
                    cell_type=c.cell_type,
                    state=c.pathway or LIVE,
                )
            )
        cells.sort(key=lambda c: c.track)
        image = stack if p.channels else stack[0]
        return SimFrame(
            position=pos.name,
            t=t,
            image=image,
            axes="CYX" if p.channels else "YX",
            pixel_size_um=p.pixel_size_um,
            labels=labels,
            cells=tuple(cells),
            channels=CHANNELS if p.channels else (),
            parents=parents,
            stage_offset_px=pos.world.offsets[t],
        )

    def _contacts(self, pos: _Position, rendered: list[RenderedCell], t: int) -> None:
        world = pos.world
        now: set[tuple[int, int]] = set()
        by_well: dict[int, list[RenderedCell]] = {}
        for cell in rendered:
            by_well.setdefault(world.cells[cell.track].well, []).append(cell)
        for group in by_well.values():
            for i, a in enumerate(group):
                for b in group[i + 1 :]:
                    if _touching(a, b):
                        now.add((min(a.track, b.track), max(a.track, b.track)))
        for pair, (start, last) in list(pos.active.items()):
            if pair not in now:
                pos.closed.append(pos.contact(pair, start, last))
                del pos.active[pair]
        for pair in sorted(now):
            start = pos.active[pair][0] if pair in pos.active else t
            pos.active[pair] = (start, t)
            world.in_contact(pair[0], pair[1], t)


def _touching(a: RenderedCell, b: RenderedCell) -> bool:
    """Whether two full masks touch or overlap (8-connected)."""
    ah, aw = a.mask.shape
    bh, bw = b.mask.shape
    y0 = max(a.mask_y0 - 1, b.mask_y0)
    x0 = max(a.mask_x0 - 1, b.mask_x0)
    y1 = min(a.mask_y0 + ah + 1, b.mask_y0 + bh)
    x1 = min(a.mask_x0 + aw + 1, b.mask_x0 + bw)
    if y0 >= y1 or x0 >= x1:
        return False
    grown = cv2.dilate(np.pad(a.mask, 1).astype(np.uint8), np.ones((3, 3), np.uint8))
    ga = grown[y0 - a.mask_y0 + 1 : y1 - a.mask_y0 + 1, x0 - a.mask_x0 + 1 : x1 - a.mask_x0 + 1]
    gb = b.mask[y0 - b.mask_y0 : y1 - b.mask_y0, x0 - b.mask_x0 : x1 - b.mask_x0]
    return bool(np.any(ga.astype(bool) & gb))


def _paint(rendered: list[RenderedCell], size: int) -> tuple[np.ndarray, list[RenderedCell]]:
    """The label image: larger cells first, smaller on top; nobody fully hidden."""
    order = sorted(rendered, key=lambda c: (-int(c.mask.sum()), c.track))
    for _ in range(len(order) + 1):
        labels = np.zeros((size, size), np.int32)
        for cell in order:
            h, w = cell.mask.shape
            window = labels[cell.mask_y0 : cell.mask_y0 + h, cell.mask_x0 : cell.mask_x0 + w]
            window[cell.mask] = cell.track
        hidden = [
            c
            for c in order
            if not np.any(
                labels[
                    c.mask_y0 : c.mask_y0 + c.mask.shape[0], c.mask_x0 : c.mask_x0 + c.mask.shape[1]
                ]
                == c.track
            )
        ]
        if not hidden:
            return labels, order
        order = [c for c in order if c not in hidden] + hidden  # bring them to the top
    raise RuntimeError("could not draw every cell visibly")
