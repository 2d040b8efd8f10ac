"""Patch mode (holotomography, bright-field): MIP -> patches -> one engine pass -> patch states.

Per frame of a position (``docs/patches.md``):

1. the 2D image: channel 0, maximum intensity projection over Z (``patch_grid.projection``);
2. the grid: ``H // patch_size_px`` x ``W // patch_size_px`` patches from pixel 0, the
   right and bottom remainder left out, as the simulator's ``patches.csv``;
3. empty patches: the frame's global Otsu threshold, then each patch's fraction of
   pixels above it; under ``foreground_ratio_min`` the patch is skipped (state -1), and
   so is a patch with a NaN or infinite pixel (the model would answer NaN);
4. the kept patches, resized to the model's input if the patch size differs and
   normalised with the model card's mean and std exactly as in training, go through
   the engine in one batched call;
5. one :class:`~livecell.analysis.patch_state.PatchTrack` per patch turns the
   probabilities into the reported state (hysteresis), a ``death`` and an
   ``early_necroptosis`` at most once per patch.

Events: one ``patch_states`` per frame (id from acquisition, position, t); ``death``
and ``early_necroptosis`` ids from acquisition, position and patch, so a patch has
one of each across replays and restarts (the pipeline keeps each id once). A position
whose frame size changes starts a new grid and new patch states.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import structlog

from livecell.analysis._protocol import StageClock, StageMeters, nothing_reported
from livecell.analysis.overlay import PatchOverlay, latest_overlay
from livecell.analysis.patch_grid import (
    Grid,
    finite_patches,
    foreground_ratio,
    otsu_threshold,
    patch_grid,
    projection,
    tile,
)
from livecell.analysis.patch_state import HysteresisParams, PatchDecision, PatchTrack
from livecell.config import Config, PatchesConfig
from livecell.engine.backends import Backend, open_backend
from livecell.events import DEATH, EARLY_NECROPTOSIS, PATCH_STATES, Event, stable_id
from livecell.frames import Frame, FrameKey

__all__ = ["BUNDLED_NAME", "PatchModel", "PatchStage", "open_patch_stage"]

FloatArray = npt.NDArray[np.float32]
BUNDLED_NAME = "holotomo_states"
RANGE_WARNING_STDS = 20.0
"""A position whose first frame's median is further than this many training standard
deviations from the training mean gets a warning in the log."""

log = structlog.get_logger("livecell.analysis.patches")


@dataclass(frozen=True)
class PatchModel:
    """A patch classifier: its backend and what its card says it reads."""

    name: str
    backend: Backend
    classes: tuple[str, ...]
    input_px: int
    mean: float
    std: float

    @classmethod
    def open(
        cls,
        folder: Path,
        backend: str = "onnxruntime",
        *,
        max_batch: int = 64,
        threads: int = 0,
        engine_cache_dir: Path | None = None,
    ) -> PatchModel:
        """The model in ``folder`` (``model.onnx`` + ``model_card.json``)."""
        from livecell.engine.bundled import CARD_FILE, PATCH_TASK, card_task

        card: dict[str, Any] = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
        task = card_task(card)
        if task != PATCH_TASK:
            raise ValueError(
                f"{folder} holds a {task!r} model; patch mode needs a {PATCH_TASK!r} one "
                "(livecell train, --task patches)"
            )
        spec = card["input"]
        if int(spec["channels"]) != 1 or int(spec["height"]) != int(spec["width"]):
            raise ValueError(
                f"{folder}: patch mode needs a one-channel square-input model, the card says "
                f"{spec['channels']} channels of {spec['height']} x {spec['width']}"
            )
        model_file = folder / ("model_card.json" if backend == "torch" else "model.onnx")
        opened = open_backend(
            backend,
            model_file,
            max_batch=max_batch,
            threads=threads,
            engine_cache_dir=engine_cache_dir,
        )
        classes = tuple(card["classes"])
        side = int(spec["height"])
        disagree = _disagreement(opened, (1, side, side), len(classes))
        if disagree:
            opened.close()
            raise ValueError(f"{model_file} does not match its model card: {disagree}")
        return cls(
            name=folder.name,
            backend=opened,
            classes=classes,
            input_px=side,
            mean=float(spec["normalisation"]["mean"][0]),
            std=float(spec["normalisation"]["std"][0]),
        )

    def prepare(self, patches: FloatArray) -> FloatArray:
        """``[N, 1, p, p]`` raw patches -> the model's normalised ``[N, 1, s, s]`` input."""
        if patches.shape[-1] != self.input_px:
            interp = cv2.INTER_AREA if patches.shape[-1] > self.input_px else cv2.INTER_LINEAR
            size = (self.input_px, self.input_px)
            resized = [
                cv2.resize(np.ascontiguousarray(p[0]), size, interpolation=interp) for p in patches
            ]
            patches = np.stack(resized).astype(np.float32)[:, None]
        out = patches.astype(np.float32, copy=True)
        out -= np.float32(self.mean)
        out /= np.float32(self.std)
        return out

    def predict(self, patches: FloatArray) -> FloatArray:
        """Class probabilities ``[N, K]`` for raw patches ``[N, 1, p, p]``."""
        if len(patches) == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return np.asarray(self.backend.predict(self.prepare(patches)), dtype=np.float32)


def event_id(kind: str, key: FrameKey, *identity: object) -> str:
    """A patch-mode event's id: ``patch_states`` by t, ``death`` and ``early_necroptosis``
    by (row, col), so a patch's death keeps its id across restarts and replays."""
    return stable_id(kind, key.acquisition, key.position, *identity)


def _disagreement(backend: Backend, input_shape: tuple[int, int, int], classes: int) -> str:
    """How the model file's input and output differ from what its card says ("" if not);
    sizes the file leaves open (dynamic axes) are not compared."""
    found = backend.input_shape
    if any(got is not None and got != want for got, want in zip(found, input_shape, strict=True)):
        return (
            f"it reads [N, {', '.join(map(str, found))}], "
            f"the card says [N, {', '.join(map(str, input_shape))}]"
        )
    if backend.num_classes and backend.num_classes != classes:
        return (
            f"it gives {backend.num_classes} class probabilities, the card names {classes} classes"
        )
    return ""


class PatchStage:
    name = "patches"

    def __init__(
        self,
        config: PatchesConfig,
        model: PatchModel,
        *,
        meters: StageMeters,
        reported: Callable[[str], bool] = nothing_reported,
    ) -> None:
        """``reported``: whether an event id is already in the events file (the daemon's
        journal), so that a restarted daemon does not report a patch's death or early
        necroptosis again, nor an early necroptosis after the death."""
        self.config = config
        self.model = model
        self._meters = meters
        self._reported = reported
        self._params = HysteresisParams(
            classes=model.classes,
            confirm_frames=config.confirm_frames,
            death_min_confidence=config.death_min_confidence,
            early_threshold=config.early_necroptosis_threshold,
            early_frames=config.early_necroptosis_frames,
        )
        self._positions: OrderedDict[tuple[str, str], _Position] = OrderedDict()

    def warm_up(self) -> None:
        """One engine call on a zero batch, so the first frame pays no first-call costs."""
        size = self.model.input_px
        self.model.backend.predict(np.zeros((1, 1, size, size), dtype=np.float32))

    def update(self, frame: Frame) -> list[Event]:
        clock = StageClock(self._meters)
        key = frame.key
        image = projection(frame.pixels, frame.axes)
        clock.lap("mip")
        grid = patch_grid(image.shape[0], image.shape[1], self.config.patch_size_px)
        threshold = otsu_threshold(image)
        keep = foreground_ratio(image, grid, threshold) >= self.config.foreground_ratio_min
        keep &= np.isfinite(threshold) & finite_patches(image, grid)
        patches = tile(image, grid, keep)
        clock.lap("tiling")
        probabilities = self.model.predict(patches)
        self._meters.count_engine_items(self.model.name, self.model.backend.name, len(patches))
        clock.lap("engine")
        position = self._latest(key)
        if position is None or position.grid != grid:
            self._check_range(image, key)
            position = _Position(grid, self._tracks(key, grid))
            self._positions[(key.acquisition, key.position)] = position
            while len(self._positions) > self.config.positions_kept:
                self._positions.popitem(last=False)  # the position longest without a frame
        events = self._events(frame, position, keep, probabilities)
        position.overlay = PatchOverlay(
            key.t, grid.patch_px, grid.rows, grid.cols, self.model.classes, keep, probabilities
        )
        clock.lap("patch_states")
        return events

    def _latest(self, key: FrameKey) -> _Position | None:
        """The position's states, now the most recently used (``positions_kept`` keeps
        memory bounded over a daemon's weeks of acquisitions, whatever their rates)."""
        position = self._positions.get((key.acquisition, key.position))
        if position is not None:
            self._positions.move_to_end((key.acquisition, key.position))
        return position

    @property
    def open_positions(self) -> list[tuple[str, str]]:
        """``(acquisition, position)`` of the positions whose state is held."""
        return list(self._positions)

    def _tracks(self, key: FrameKey, grid: Grid) -> list[PatchTrack]:
        """Fresh patch states for a position's grid, each knowing whether its death or
        early necroptosis was reported before (by this daemon before a restart)."""
        tracks = []
        for index in range(grid.rows * grid.cols):
            row, col = divmod(index, grid.cols)
            track = PatchTrack(self._params)
            track.died = self._reported(event_id(DEATH, key, row, col))
            track.early_done = self._reported(event_id(EARLY_NECROPTOSIS, key, row, col))
            tracks.append(track)
        return tracks

    def _check_range(self, image: FloatArray, key: FrameKey) -> None:
        """Warn, once per position, when its frames read far from what the model was
        trained on (raw camera counts for a refractive-index model, say): its calls would
        then mean little. Derives nothing; the events are the same either way."""
        finite = image[np.isfinite(image)]
        if finite.size == 0:
            return
        median = float(np.median(finite))
        if abs(median - self.model.mean) > RANGE_WARNING_STDS * self.model.std:
            log.warning(
                "frames far from the model's training range: check the model and the units",
                acquisition=key.acquisition,
                position=key.position,
                frame_median=round(median, 4),
                model_mean=round(self.model.mean, 4),
                model_std=round(self.model.std, 4),
                model=self.model.name,
            )

    def overlay(self, key: FrameKey) -> PatchOverlay | None:
        """The grid and probabilities of ``key`` if it is its position's latest frame
        (``livecell.analysis.overlay``: the dashboard's read-only view)."""
        position = self._positions.get((key.acquisition, key.position))
        return None if position is None else latest_overlay(position.overlay, key)

    def finish(self) -> list[Event]:
        """Nothing waits on the end of the run."""
        return []

    def close(self) -> None:
        self.model.backend.close()

    def _events(
        self, frame: Frame, position: _Position, keep: npt.NDArray[np.bool_], probs: FloatArray
    ) -> list[Event]:
        key, grid, classes = frame.key, position.grid, self.model.classes
        states = np.full(grid.shape, -1, dtype=np.int64)
        decided: list[tuple[int, int, PatchDecision]] = []
        kept = iter(probs)
        for index, track in enumerate(position.tracks):
            row, col = divmod(index, grid.cols)
            states[row, col], decisions = track.update(
                key.t, next(kept) if keep[row, col] else None
            )
            decided += [(row, col, d) for d in decisions]
        counts = np.bincount(states[states >= 0], minlength=len(classes))

        def event(kind: str, identity: tuple[object, ...], **fields: Any) -> Event:
            return Event(
                event_id=event_id(kind, key, *identity),
                kind=kind,
                acquisition=key.acquisition,
                position=key.position,
                t=key.t,
                completed_at=frame.completed_at,
                fields=fields,
            )

        events = [
            event(
                PATCH_STATES,
                (key.t,),
                classes=list(classes),
                patch_size=grid.patch_px,
                grid=[grid.rows, grid.cols],
                states=states.tolist(),
                counts={name: int(n) for name, n in zip(classes, counts, strict=True)},
            )
        ]
        for row, col, d in decided:
            common: dict[str, Any] = {
                "onset_t": d.onset_t,
                "confidence": round(d.confidence, 4),
                "patch": [row, col],
            }
            if d.early:
                events.append(event(EARLY_NECROPTOSIS, (row, col), **common))
            else:
                events.append(event(DEATH, (row, col), pathway=d.pathway, **common))
        return events


@dataclass
class _Position:
    grid: Grid
    tracks: list[PatchTrack]
    overlay: PatchOverlay | None = None  # the latest frame's, for viewers only


def model_folder(config: Config) -> Path:
    """``[patches] model``, else ``[engine] model``, else the bundled ``holotomo_states``."""
    from livecell.engine.bundled import bundled_model_dir

    if config.patches.model is not None:
        return config.patches.model
    if config.engine.model:
        return Path(config.engine.model)
    return bundled_model_dir(BUNDLED_NAME)


def open_patch_stage(
    config: Config, meters: StageMeters, *, reported: Callable[[str], bool] = nothing_reported
) -> PatchStage:
    """The patch stage with the configured (or bundled) model, opened on ``[engine] backend``;
    ``reported`` as for :class:`PatchStage`."""
    settings = config.patches
    model = PatchModel.open(
        model_folder(config),
        config.engine.backend,
        max_batch=settings.batch_size,
        threads=settings.threads,
        engine_cache_dir=config.engine_cache_dir,
    )
    return PatchStage(settings, model, meters=meters, reported=reported)
