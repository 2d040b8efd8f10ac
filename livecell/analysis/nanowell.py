"""Nanowell mode (TIMING): wells -> segmentation -> per-well tracking -> contacts and fates.

Per frame of a position: the well lattice follows the drift (``wells.py``); every
well's interior is segmented in one batched call; one :class:`NanowellTracker` per
well links its cells (wells share nothing); contacts come from the contact net's
call on each pair of neighbouring cells (``tracking/contact_net.py``; every pair of the
frame in one batch) with one frame of hysteresis; the sequence models read each
track's recent crops and motion and :mod:`livecell.analysis.fates` turns their
probabilities into one ``cell_type`` and one ``death`` (and ``early_necroptosis``)
event per track. Tracks-file rows leave once their frame's smoothing lag has passed.

Track ids are unique within a position: each new track of a well takes the
position's next id, wells in id order, so a replay of the same frames gives the
same ids and the same ``event_id``\\ s. Tracking state lives in memory: a daemon
restarted at frame ``t0`` of a position starts new tracks there, numbered from
``t0 * TRACK_ID_BLOCK + 1``, so they never reuse an id (or an ``event_id``) of
the tracks before the restart.

A position the acquisition has moved on from is finished, so a daemon that runs
acquisition after acquisition keeps only the live ones in memory: once the stage has
analysed ``position_idle_rounds`` frames per open position without one of it, its
held tracks-file rows are written and its state dropped. Counted in frames, not
seconds, so a replay finishes the same positions at the same frames. A later frame
of a finished position starts it afresh, like a restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from livecell.analysis._protocol import StageClock, StageMeters
from livecell.analysis.fates import CellTypeVote, DeathDecision, DeathWatch
from livecell.analysis.overlay import CellMark, NanowellOverlay, WellCells, latest_overlay
from livecell.analysis.track_state import TrackState
from livecell.analysis.wells import WellLattice
from livecell.config import Config, NanowellConfig
from livecell.engine.sequence_runtime import SequenceModel
from livecell.errors import ConfigError
from livecell.events import (
    CELL_TYPE,
    CONTACT_END,
    CONTACT_START,
    DEATH,
    EARLY_NECROPTOSIS,
    Event,
    stable_id,
)
from livecell.frames import Frame, FrameKey
from livecell.segmentation import ForegroundSegmenter, Segmenter
from livecell.segmentation.unet import normalise_crop
from livecell.simulation.scene import Well
from livecell.sinks.tracks_csv import TrackRow, TracksFile
from livecell.tracking.arrest import ArrestRule
from livecell.tracking.cell_crops import crop_centred, mask_eccentricity
from livecell.tracking.contact_net import ContactNet, WellForContacts
from livecell.tracking.contact_score import contact_pairs, track_pairs
from livecell.tracking.contacts import ContactHysteresis, NewTrackHold
from livecell.tracking.nanowell import NanowellTracker, TrackedCell, WellUpdate
from livecell.tracking.smoothing import FixedLagSmoother

__all__ = [
    "NanowellModels",
    "NanowellStage",
    "death_watch",
    "open_nanowell_stage",
    "phase_image",
]

FloatArray = npt.NDArray[np.float32]
TRACK_ID_BLOCK = 10_000_000
"""Track ids of a position first seen at frame ``t0`` start at ``t0 * TRACK_ID_BLOCK + 1``."""
WARM_UP_WELL_PX = 192
"""Side of the blank well ``warm_up`` segments (a 2048 px chip of 8 x 8 wells: ~190 px)."""


def phase_image(frame: Frame) -> FloatArray:
    """The 2D image the nanowell stage reads: channel 0, maximum over Z.

    NaN or infinite pixels (dead camera pixels, a failed reconstruction) take the median
    of the finite ones, so a few bad pixels cost their own area, not the whole frame's
    wells (a frame with no finite pixel never gets here: the sources reject it).
    """
    pixels = np.asarray(frame.pixels)
    if "C" in frame.axes:
        pixels = np.take(pixels, 0, axis=frame.axes.index("C"))
    if "Z" in frame.axes:
        pixels = pixels.max(axis=0)
    image = pixels.astype(np.float32, copy=False)
    finite = np.isfinite(image)
    if not finite.all():
        image = np.where(finite, image, np.median(image[finite])).astype(np.float32)
    return image


@dataclass(frozen=True)
class NanowellModels:
    """``contact``: the contact net, where ``contact_rule = "net"`` and the segmenter
    gives a foreground (else the logistic model or adjacency judge contacts)."""

    segmenter: Segmenter
    cell_type: SequenceModel | None = None
    death: SequenceModel | None = None
    contact: ContactNet | None = None


class NanowellStage:
    name = "nanowell"

    def __init__(
        self,
        config: NanowellConfig,
        models: NanowellModels,
        *,
        tracks_out: TracksFile | None = None,
        meters: StageMeters,
    ) -> None:
        self.config = config
        self.models = models
        self._tracks_out = tracks_out
        self._meters = meters
        self._positions: dict[tuple[str, str], _Position] = {}
        self._frames_analysed = 0

    def warm_up(self) -> None:
        """Run the segmenter and sequence models once on a blank well (nothing is kept)."""
        self.models.segmenter.segment([np.zeros((WARM_UP_WELL_PX,) * 2, dtype=np.float32)])
        if self.models.contact is not None:
            side = 2 * self.models.contact.half_px
            self.models.contact.probabilities(np.zeros((1, 4, side, side), np.float32))
        for model in (self.models.cell_type, self.models.death):
            if model is not None:
                spec = model.input
                channels, features = spec.image_mean.shape[2], spec.motion_mean.shape[-1]
                crops = np.zeros((1, spec.window, channels, spec.crop_px, spec.crop_px), np.float32)
                model.predict(crops, np.zeros((1, spec.window, features), np.float32))

    def update(self, frame: Frame) -> list[Event]:
        key = frame.key
        position = self._positions.get((key.acquisition, key.position))
        if position is None:
            position = _Position(
                key.acquisition, key.position, self.config, self.models, first_t=key.t
            )
            self._positions[(key.acquisition, key.position)] = position
        events, rows = position.update(phase_image(frame), key.t, frame.completed_at, self._meters)
        self._frames_analysed += 1
        position.last_frame_index = self._frames_analysed
        idle = self._idle_positions()
        events += [event for p in idle for event in p.held_deaths()]
        rows += [row for p in idle for row in p.finish()]
        if self._tracks_out is not None:
            self._tracks_out.write(rows)
        return events

    @property
    def open_positions(self) -> list[tuple[str, str]]:
        """``(acquisition, position)`` of the positions whose state is held."""
        return list(self._positions)

    def finish(self) -> list[Event]:
        """The run ends (the source is exhausted or the daemon stops): the deaths the open
        tracks' apoptosis hold still waits on, made now. Called once, before ``close``."""
        return [event for p in self._positions.values() for event in p.held_deaths()]

    def _idle_positions(self) -> list[_Position]:
        """Take out the positions without a frame for ``position_idle_rounds`` frames per
        open position (finished, as a restart would)."""
        limit = self.config.position_idle_rounds * len(self._positions)
        idle = [
            key
            for key, position in self._positions.items()
            if self._frames_analysed - position.last_frame_index > limit
        ]
        return [self._positions.pop(key) for key in idle]

    def overlay(self, key: FrameKey) -> NanowellOverlay | None:
        """Wells and tracked cells of ``key`` if it is its position's latest frame
        (``livecell.analysis.overlay``: the dashboard's read-only view)."""
        position = self._positions.get((key.acquisition, key.position))
        return None if position is None else latest_overlay(position.overlay, key)

    def close(self) -> None:
        """Write the rows the smoothing lag still holds (the acquisition has ended), then
        release the models; a model that fails to close loses no row."""
        rows = [row for p in self._positions.values() for row in p.finish()]
        with ExitStack() as stack:
            stack.callback(self.models.segmenter.close)
            if self.models.contact is not None:
                stack.callback(self.models.contact.close)
            if self._tracks_out is not None:
                stack.callback(self._tracks_out.close)
                self._tracks_out.write(rows)


@dataclass
class _Position:
    acquisition: str
    position: str
    config: NanowellConfig
    models: NanowellModels
    first_t: int = 0
    lattice: WellLattice = field(init=False)
    trackers: dict[str, NanowellTracker] = field(default_factory=dict)
    contacts: dict[str, ContactHysteresis] = field(default_factory=dict)
    contact_hold: NewTrackHold[Event] = field(init=False)
    ids: dict[tuple[str, int], int] = field(default_factory=dict)
    tracks: dict[int, TrackState] = field(default_factory=dict)
    next_id: int = field(init=False)
    overlay: NanowellOverlay | None = None  # the latest frame's, for viewers only
    last_frame_index: int = 0  # the stage's count of analysed frames at this one's latest
    death_probabilities: list[tuple[int, tuple[float, ...]]] = field(default_factory=list)
    latest_frame: _EventMaker | None = None  # makes the events of the latest frame

    def __post_init__(self) -> None:
        self.lattice = WellLattice(edge_margin_px=self.config.well_edge_margin_px)
        self.next_id = self.first_t * TRACK_ID_BLOCK + 1
        self.contact_hold = NewTrackHold(self.config.contact_min_track_frames)

    def update(
        self, image: FloatArray, t: int, completed_at: float, meters: StageMeters
    ) -> tuple[list[Event], list[TrackRow]]:
        clock = StageClock(meters)
        wells = self.lattice.update(image, t)
        clock.lap("wells")
        crops = [image[w.y0 : w.y1, w.x0 : w.x1] for w in wells]
        labels, foregrounds = self._segment(crops)
        clock.lap("segmentation")
        touching = self._touching(crops, labels, foregrounds)
        clock.lap("contacts")
        events: list[Event] = []
        rows: list[TrackRow] = []
        new_event = _EventMaker(self.acquisition, self.position, t, completed_at)
        self.latest_frame = new_event
        marks: list[WellCells] = []
        self.death_probabilities = []
        for well, well_labels, label_pairs in zip(wells, labels, touching, strict=True):
            tracker = self.trackers.setdefault(well.well, NanowellTracker())
            pixels = image[well.y0 : well.y1, well.x0 : well.x1]  # appearance for the linking
            update = tracker.update(
                well_labels, t, pixels if pixels.shape == well_labels.shape else None
            )
            rows += self._follow(well, well_labels, update, image)
            contacts = (
                update.contacts if label_pairs is None else track_pairs(label_pairs, update.cells)
            )
            events += self._contacts(well.well, contacts, t, new_event)
            marks.append(self._marks(well, well_labels, update))
        clock.lap("tracking")
        events += self._fates(new_event, meters)
        clock.lap("cell_models")
        death = self.models.death
        self.overlay = NanowellOverlay(
            t=t,
            wells=tuple(marks),
            death_classes=tuple(death.classes) if death is not None else (),
            death_probabilities=tuple(self.death_probabilities),
        )
        return events, rows

    def _segment(
        self, crops: list[FloatArray]
    ) -> tuple[list[npt.NDArray[np.int32]], list[FloatArray | None]]:
        """Each well's labels, and its foreground probability where the contact model
        reads it (``contact_rule`` not ``"adjacency"``, and a segmenter that gives one)."""
        segmenter = self.models.segmenter
        if self.config.contact_rule != "adjacency" and isinstance(segmenter, ForegroundSegmenter):
            pairs = segmenter.segment_with_foreground(crops)
            return [labels for labels, _ in pairs], [foreground for _, foreground in pairs]
        return segmenter.segment(crops), [None] * len(crops)

    def _touching(
        self,
        crops: list[FloatArray],
        labels: list[npt.NDArray[np.int32]],
        foregrounds: list[FloatArray | None],
    ) -> list[npt.NDArray[np.int64] | None]:
        """Each well's label pairs in contact, by the contact net (every well in one
        batch) or the logistic model; None where the tracker's mask adjacency decides."""
        net = self.models.contact
        if net is None or self.config.contact_rule != "net":
            return [
                None if foreground is None else contact_pairs(well_labels, foreground)
                for well_labels, foreground in zip(labels, foregrounds, strict=True)
            ]
        judged = [
            (i, WellForContacts(normalise_crop(crop), well_labels, foreground))
            for i, (crop, well_labels, foreground) in enumerate(
                zip(crops, labels, foregrounds, strict=True)
            )
            if foreground is not None
        ]
        out: list[npt.NDArray[np.int64] | None] = [None] * len(crops)
        for (i, _), pairs in zip(judged, net.contact_pairs([w for _, w in judged]), strict=True):
            out[i] = pairs
        return out

    def _marks(self, well: Well, labels: npt.NDArray[np.integer], update: WellUpdate) -> WellCells:
        """The well's cells for viewers: references and a few numbers, nothing computed."""
        cells = tuple(
            CellMark(
                track=self.ids[(well.well, cell.track)],
                x=cell.x + well.x0,
                y=cell.y + well.y0,
                labels=() if cell.label is None else (cell.label, *cell.fragments),
            )
            for cell in update.cells
            if (well.well, cell.track) in self.ids
        )
        return WellCells(well.well, well.x0, well.y0, well.x1, well.y1, labels, cells)

    def finish(self) -> list[TrackRow]:
        rows = [row for state in self.tracks.values() for row in state.finish()]
        self.tracks.clear()
        return rows

    def held_deaths(self) -> list[Event]:
        """The deaths the apoptosis hold still waits on, made now: the open tracks get no
        more frames (:meth:`DeathWatch.decide_held`); reported at the latest frame."""
        if self.latest_frame is None:
            return []
        decided = [(s, s.death.decide_held()) for s in self.tracks.values() if s.death]
        return [_fate_event(self.latest_frame, s, d) for s, d in decided if d is not None]

    # ------------------------------------------------------------------ tracks

    def _global_id(self, well: str, local: int) -> int:
        track = self.ids.get((well, local))
        if track is None:
            track = self.ids[(well, local)] = self.next_id
            self.next_id += 1
        return track

    def _follow(
        self, well: Well, labels: npt.NDArray[np.integer], update: WellUpdate, image: FloatArray
    ) -> list[TrackRow]:
        rows: list[TrackRow] = []
        for local in update.ended:
            track = self.ids.pop((well.well, local), -1)
            self.contact_hold.ended(track)
            state = self.tracks.pop(track, None)
            if state is not None:
                rows += state.finish()
        crop_px = self._crop_px()
        label_image = labels[None].astype(np.float32)
        for cell in sorted(update.cells, key=lambda c: c.track):
            track = self._global_id(well.well, cell.track)
            state = self.tracks.get(track)
            if state is None:
                born_t = update.t if update.t > self.first_t else None
                state = self.tracks[track] = self._new_state(well.well, track, born_t)
                if born_t is not None:
                    self.contact_hold.born(track, born_t)
            crop, eccentricity = self._cell_crop(cell, labels, label_image, well, image, crop_px)
            rows += state.add(
                update.t,
                cell.x + well.x0,
                cell.y + well.y0,
                cell.area_px,
                eccentricity,
                crop,
                measured=cell.measured,
                drift_px=self.lattice.offset_px,
            )
        return rows

    def _cell_crop(
        self,
        cell: TrackedCell,
        labels: npt.NDArray[np.integer],
        label_image: FloatArray,
        well: Well,
        image: FloatArray,
        crop_px: int,
    ) -> tuple[FloatArray, float]:
        pixels = crop_centred(image[None], cell.x + well.x0, cell.y + well.y0, crop_px)
        if cell.label is None:
            return np.concatenate([pixels, np.zeros_like(pixels)]), 0.0
        crop_labels = crop_centred(label_image, cell.x, cell.y, crop_px)
        mask = np.isin(crop_labels, (cell.label, *cell.fragments)).astype(np.float32)
        return np.concatenate([pixels, mask]), mask_eccentricity(mask[0] > 0)

    def _crop_px(self) -> int:
        model = self.models.death or self.models.cell_type
        return model.input.crop_px if model is not None else 48

    def _new_state(self, well: str, track: int, born_t: int | None) -> TrackState:
        c = self.config
        cell_type, death = self.models.cell_type, self.models.death
        window = max((m.input.window for m in (cell_type, death) if m is not None), default=1)
        arrest = _arrest_rule(c)
        # the model's onset lies within its window; the rule looks back from there
        reach = 0 if arrest is None else arrest.reach_frames
        return TrackState(
            position=self.position,
            well=well,
            track=track,
            smoother=FixedLagSmoother(
                lam=c.smoothing_lambda,
                lag=c.smoothing_lag_frames,
                window=c.smoothing_window_frames,
            ),
            window=window,
            history=window + reach,
            cell_type=CellTypeVote(
                cell_type.classes,
                min_confidence=c.cell_type_min_confidence,
                stable_frames=c.cell_type_stable_frames,
            )
            if cell_type is not None
            else None,
            death=death_watch(death.classes, c, born_t) if death is not None else None,
        )

    # ------------------------------------------------------------------ events

    def _contacts(
        self, well: str, contacts: frozenset[tuple[int, int]], t: int, new_event: _EventMaker
    ) -> list[Event]:
        """``contacts``: this frame's touching pairs of the well's (local) track ids."""
        hysteresis = self.contacts.setdefault(well, ContactHysteresis())
        pairs = [(self._global_id(well, a), self._global_id(well, b)) for a, b in contacts]
        changes = hysteresis.update(pairs, t)
        events = [
            new_event(CONTACT_START, (well, a, b, t), well=well, tracks=[a, b])
            for a, b in changes.started
        ]
        events += [
            new_event(
                CONTACT_END,
                (well, c.track_a, c.track_b, c.start_t),
                t=c.end_t + 1,  # the first frame apart, confirmed by the hysteresis now
                well=well,
                tracks=[c.track_a, c.track_b],
            )
            for c in changes.ended
        ]
        return self.contact_hold.update([(tuple(e.fields["tracks"]), e) for e in events], t)

    def _fates(self, new_event: _EventMaker, meters: StageMeters) -> list[Event]:
        events: list[Event] = []
        cell_type, death = self.models.cell_type, self.models.death
        if cell_type is not None:
            pending = [s for s in self.tracks.values() if s.cell_type and not s.cell_type.decided]
            for state, (_, _, window_probs) in zip(
                pending, _run(cell_type, pending, meters), strict=True
            ):
                assert state.cell_type is not None
                decided = state.cell_type.update(window_probs)
                if decided is not None:
                    events.append(
                        new_event(
                            CELL_TYPE,
                            (state.well, state.track),
                            well=state.well,
                            track=state.track,
                            cell_type=decided.cell_type,
                            confidence=round(decided.confidence, 4),
                        )
                    )
        if death is not None:
            alive = [s for s in self.tracks.values() if s.death and s.death.death is None]
            for state, (ts, frame_probs, window_probs) in zip(
                alive, _run(death, alive, meters), strict=True
            ):
                assert state.death is not None
                self.death_probabilities.append(
                    (state.track, tuple(float(p) for p in np.ravel(window_probs)))
                )
                steps = state.steps_px() if state.death.arrest is not None else None
                for decision in state.death.update(ts, frame_probs, window_probs, steps):
                    events.append(_fate_event(new_event, state, decision))
        return events


def _run(
    model: SequenceModel, states: Sequence[TrackState], meters: StageMeters
) -> list[tuple[npt.NDArray[np.int64], FloatArray, FloatArray]]:
    """The model over each track's current window: (frame ts, per-frame, per-window)."""
    if not states:
        return []
    meters.count_engine_items(model.name, "onnxruntime", len(states))
    windows = [s.window_arrays(model.input.motion_frame) for s in states]
    ts = [w[0][-model.input.window :] for w in windows]
    crops = np.stack([w[1][-model.input.window :] for w in windows])
    motion = np.stack([w[2][-model.input.window :] for w in windows])
    per_frame, per_window = model.predict(crops, motion)
    return [(ts[i], per_frame[i], per_window[i]) for i in range(len(states))]


def death_watch(
    classes: tuple[str, ...], c: NanowellConfig, born_t: int | None = None
) -> DeathWatch:
    """A new track's :class:`DeathWatch` as configured: the call, the onset, the
    motility-arrest rule and the apoptosis hold (``scripts/train_death_head.py``
    chooses its epoch with it); ``born_t``: the frame the track appeared, if after the
    acquisition's first."""
    return DeathWatch(
        classes,
        threshold=c.death_threshold,
        confirm_frames=c.death_confirm_frames,
        early_threshold=c.early_necroptosis_threshold,
        min_track_frames=c.death_min_track_frames,
        onset_threshold=c.death_onset_threshold,
        onset_context_frames=c.death_onset_context_frames,
        arrest=_arrest_rule(c),
        apoptosis_hold_frames=c.death_apoptosis_hold_frames,
        born_t=born_t,
    )


def _arrest_rule(c: NanowellConfig) -> ArrestRule | None:
    """The death's motility-arrest rule as configured (None: off)."""
    if not c.death_arrest:
        return None
    return ArrestRule(
        before_frames=c.death_arrest_before_frames,
        after_frames=c.death_arrest_after_frames,
        window_frames=c.death_arrest_window_frames,
        contrast=c.death_arrest_contrast,
        still_px=c.death_arrest_still_px,
        crawl_frames=c.death_arrest_crawl_frames,
    )


def _fate_event(new_event: _EventMaker, state: TrackState, decision: DeathDecision) -> Event:
    common: dict[str, Any] = {
        "onset_t": decision.onset_t,
        "confidence": round(decision.confidence, 4),
        "well": state.well,
        "track": state.track,
    }
    if decision.early:
        return new_event(EARLY_NECROPTOSIS, (state.well, state.track), **common)
    return new_event(DEATH, (state.well, state.track), pathway=decision.pathway, **common)


@dataclass(frozen=True)
class _EventMaker:
    acquisition: str
    position: str
    t: int
    completed_at: float

    def __call__(
        self, kind: str, identity: tuple[object, ...], *, t: int | None = None, **fields: Any
    ) -> Event:
        """An event of this frame (or about frame ``t``, known only now)."""
        return Event(
            event_id=stable_id(kind, self.acquisition, self.position, *identity),
            kind=kind,
            acquisition=self.acquisition,
            position=self.position,
            t=self.t if t is None else t,
            completed_at=self.completed_at,
            fields=fields,
        )


def open_nanowell_stage(config: Config, meters: StageMeters) -> NanowellStage:
    """The nanowell stage with the configured (or bundled) models; the tracks file opened."""
    from livecell.engine.bundled import bundled_model_dir
    from livecell.segmentation import ClassicalSegmenter, UNetSegmenter

    settings = config.nanowell
    death = SequenceModel(settings.death_model or bundled_model_dir("nanowell_death"))
    cell_type = SequenceModel(settings.cell_type_model or bundled_model_dir("nanowell_cell_type"))
    if cell_type.input.crop_px != death.input.crop_px:
        raise ConfigError(
            "nanowell.cell_type_model / nanowell.death_model",
            f"the cell-type model reads {cell_type.input.crop_px} px crops and the death model "
            f"{death.input.crop_px} px (each track is cropped once for both): train them with "
            "the same --crop-px (the bundled ones: 48)",
        )
    if settings.death_apoptosis_hold_frames >= death.input.window:
        raise ConfigError(
            "nanowell.death_apoptosis_hold_frames",
            f"must be less than the death model's window ({death.input.window} frames): an "
            "onset is placed within the window, so a longer hold would never end",
        )
    segmenter: Segmenter
    cache = config.engine_cache_dir
    if settings.segmenter == "classical":
        segmenter = ClassicalSegmenter()
    elif settings.segmentation_model is not None:
        segmenter = UNetSegmenter(
            settings.segmentation_model, _backend(config), engine_cache_dir=cache
        )
    else:
        segmenter = UNetSegmenter.bundled(_backend(config), engine_cache_dir=cache)
    contact = None
    if settings.contact_rule == "net" and isinstance(segmenter, ForegroundSegmenter):
        contact = (
            ContactNet(settings.contact_model, _backend(config), engine_cache_dir=cache)
            if settings.contact_model is not None
            else ContactNet.bundled(_backend(config), engine_cache_dir=cache)
        )
    models = NanowellModels(segmenter=segmenter, cell_type=cell_type, death=death, contact=contact)
    tracks = TracksFile(config.sinks.tracks) if config.sinks.tracks is not None else None
    return NanowellStage(settings, models, tracks_out=tracks, meters=meters)


def _backend(config: Config) -> str:
    """The segmentation backend: ``auto`` means ONNX Runtime until a GPU path is wired."""
    return "onnxruntime" if config.engine.backend == "auto" else config.engine.backend
