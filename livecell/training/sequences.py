"""Per-track sequence windows from simulator acquisitions, for the nanowell CNN-LSTM.

:func:`load_track_sequences` reads a simulated acquisition ``OUT`` (SPEC 5): the tracks
in ``OUT/ground_truth/tracks.csv``, their deaths in ``deaths.csv``, the frames
``OUT/frames/<position>/t#####.ome.tif`` and the label images
``OUT/ground_truth/<position>/TRA/man_track###.tif`` (pixel value = track id). One frame
(and its label image) is read at a time. For every row of ``tracks.csv`` it cuts

- a ``crop_px`` square of the frame centred on the cell's ``(x, y)`` (zero outside the
  frame), with the cell's mask (``label == track``, 0/1) as one more channel;
- the cell's centroid, area (``tracks.csv``) and eccentricity (from the second central
  moments of its mask), turned into :func:`~livecell.engine.models.sequence.motion_descriptors`
  over the whole track.

Each track (in time order) is cut into windows of ``window`` frames every ``stride``
frames; when the last start does not reach the track's end, one more window ends at
the last frame, so the end of every track (where deaths are) is always seen. A track
shorter than ``window`` gives one window padded at the front by repeating its first
frame (crop, motion row, time and targets), as the model expects.

Labels per window: ``cell_type`` (index into the sorted simulator cell types) and
``pathway`` (``live``, then the death pathways): the track's pathway from
``deaths.csv`` when the window's last frame is at or after ``onset_t``, else ``live``.
Per frame: ``frame_death`` is 1 from ``onset_t`` on. The group of a window, which a
split must never cut through, is ``<OUT folder name>/<position>``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import tifffile
from scipy import ndimage
from tqdm import tqdm

from livecell.simulation.scene import CELL_STATES, CELL_TYPES, DEATH_PATHWAYS, LIVE
from livecell.tracking.cell_crops import crop_centred, mask_eccentricity
from livecell.tracking.motion import (
    MOTION_DESCRIPTORS,
    chip_motion_descriptors,
    motion_descriptors,
)
from livecell.training.datasets import DataError, FloatArray, read_frame

__all__ = [
    "CELL_TYPE_CLASSES",
    "PATHWAY_CLASSES",
    "SequenceSet",
    "SequenceTask",
    "concatenate_sequences",
    "load_sequences",
    "load_track_sequences",
]

SequenceTask = Literal["cell_type", "death"]
CELL_TYPE_CLASSES: tuple[str, ...] = tuple(sorted(CELL_TYPES))
"""Cell-type classes in label order (the simulator's cell types, sorted)."""
PATHWAY_CLASSES: tuple[str, ...] = (LIVE, *DEATH_PATHWAYS)
"""Death classes in label order: ``live`` first, then the pathways."""
TRACK_COLUMNS = ("position", "t", "track", "well", "x", "y", "area", "cell_type", "state")
DEATH_COLUMNS = ("position", "track", "well", "pathway", "onset_t", "marker_t")

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, eq=False)
class SequenceSet:
    """Fixed-length track windows and their labels (``N`` windows of ``T`` frames).

    ``crops`` float32 ``[N, T, C + 1, H, W]`` (image channels, then the 0/1 mask);
    ``motion`` float32 ``[N, T, 5]`` (raw :data:`MOTION_DESCRIPTORS`, not standardised);
    ``frame_t`` ``[N, T]`` the frame index of each step (padding repeats the first);
    ``frame_death`` float32 ``[N, T]`` 1 where the cell is dead (``t >= onset_t``);
    ``cell_type`` / ``pathway`` ``[N]`` indices into ``cell_type_classes`` /
    ``pathway_classes``; ``track_pathway`` ``[N]`` the pathway the track ends in (``live``
    when it never dies), whatever the window sees; ``groups`` and ``tracks``
    (``<OUT name>/<position>/<track id>``) one per window.
    """

    crops: FloatArray
    motion: FloatArray
    frame_t: IntArray
    frame_death: FloatArray
    cell_type: IntArray
    pathway: IntArray
    track_pathway: IntArray
    groups: tuple[str, ...]
    tracks: tuple[str, ...]
    cell_type_classes: tuple[str, ...] = CELL_TYPE_CLASSES
    pathway_classes: tuple[str, ...] = PATHWAY_CLASSES
    stride: int = 1
    sources: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.crops.ndim != 5 or self.crops.dtype != np.float32:
            raise ValueError(
                f"crops must be float32 [N, T, C+1, H, W], got {self.crops.dtype} "
                f"{self.crops.shape}"
            )
        n, steps = self.crops.shape[:2]
        if self.crops.shape[2] < 2:
            raise ValueError("crops need at least one image channel and the mask channel")
        if self.motion.shape != (n, steps, len(MOTION_DESCRIPTORS)):
            raise ValueError(f"motion {self.motion.shape} does not match crops {(n, steps)}")
        for name in ("frame_t", "frame_death"):
            if getattr(self, name).shape != (n, steps):
                raise ValueError(f"{name} must be [N, T] = {(n, steps)}")
        for name in ("cell_type", "pathway", "track_pathway"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must be [N] = ({n},)")
        if len(self.groups) != n or len(self.tracks) != n:
            raise ValueError(f"{n} windows, {len(self.groups)} groups, {len(self.tracks)} tracks")
        for labels, classes in (
            (self.cell_type, self.cell_type_classes),
            (self.pathway, self.pathway_classes),
            (self.track_pathway, self.pathway_classes),
        ):
            if n and (labels.min() < 0 or labels.max() >= len(classes)):
                raise ValueError(f"labels outside 0..{len(classes) - 1}")

    def __len__(self) -> int:
        return int(self.crops.shape[0])

    @property
    def window(self) -> int:
        return int(self.crops.shape[1])

    @property
    def image_channels(self) -> int:
        """Channels of the frame image; the crops carry one more, the mask."""
        return int(self.crops.shape[2]) - 1

    @property
    def crop_size(self) -> tuple[int, int]:
        return int(self.crops.shape[3]), int(self.crops.shape[4])

    def task_labels(self, task: SequenceTask) -> tuple[IntArray, tuple[str, ...]]:
        """Window labels and class names of ``task``."""
        if task == "cell_type":
            return self.cell_type, self.cell_type_classes
        if task == "death":
            return self.pathway, self.pathway_classes
        raise ValueError(f"unknown task {task!r}; expected 'cell_type' or 'death'")

    def frame_labels(self, task: SequenceTask) -> IntArray:
        """Per-frame targets ``[N, T]``: the cell type, or the pathway from onset on (else live)."""
        if task == "cell_type":
            return np.repeat(self.cell_type[:, None], self.window, axis=1)
        if task == "death":
            dead = self.frame_death > 0.5
            return np.where(dead, self.track_pathway[:, None], 0).astype(np.int64)
        raise ValueError(f"unknown task {task!r}; expected 'cell_type' or 'death'")

    def subset(self, index: npt.ArrayLike) -> SequenceSet:
        """The windows at ``index`` (an integer array), same classes and provenance."""
        idx = np.asarray(index, dtype=np.int64)
        return SequenceSet(
            crops=self.crops[idx],
            motion=self.motion[idx],
            frame_t=self.frame_t[idx],
            frame_death=self.frame_death[idx],
            cell_type=self.cell_type[idx],
            pathway=self.pathway[idx],
            track_pathway=self.track_pathway[idx],
            groups=tuple(self.groups[i] for i in idx),
            tracks=tuple(self.tracks[i] for i in idx),
            cell_type_classes=self.cell_type_classes,
            pathway_classes=self.pathway_classes,
            stride=self.stride,
            sources=self.sources,
        )


# ---------------------------------------------------------------- pure helpers


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Start indices of the windows of a track of ``length`` frames (see the module docstring)."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def _padded(a: npt.NDArray[np.generic], window: int) -> npt.NDArray[np.generic]:
    """``a`` (time first) padded at the front to ``window`` rows by repeating row 0."""
    missing = window - a.shape[0]
    if missing <= 0:
        return a
    return np.concatenate([np.repeat(a[:1], missing, axis=0), a])


# ---------------------------------------------------------------- reading the truth


@dataclass(frozen=True, slots=True)
class _Row:
    t: int
    x: float
    y: float
    area: float
    cell_type: str


def _read_csv(path: Path, columns: Sequence[str], what: str) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read the {what}: {exc}", path=path) from exc
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)}", path=path)
    return rows


def _read_tracks(path: Path) -> dict[tuple[str, int], list[_Row]]:
    tracks: dict[tuple[str, int], list[_Row]] = {}
    for line, row in enumerate(_read_csv(path, TRACK_COLUMNS, "track truth"), start=2):
        try:
            key = (row["position"], int(row["track"]))
            item = _Row(
                t=int(row["t"]),
                x=float(row["x"]),
                y=float(row["y"]),
                area=float(row["area"]),
                cell_type=row["cell_type"],
            )
            state = row["state"]
        except (TypeError, ValueError) as exc:
            raise DataError(f"line {line}: malformed row {row}", path=path) from exc
        if not (math.isfinite(item.x) and math.isfinite(item.y)) or not item.area > 0:
            raise DataError(f"line {line}: x, y must be finite and area positive", path=path)
        if item.t < 0:
            raise DataError(f"line {line}: negative t {item.t}", path=path)
        if item.cell_type not in CELL_TYPE_CLASSES:
            raise DataError(f"line {line}: unknown cell_type {item.cell_type!r}", path=path)
        if state not in CELL_STATES:
            raise DataError(f"line {line}: unknown state {state!r}", path=path)
        tracks.setdefault(key, []).append(item)
    if not tracks:
        raise DataError("no tracks", path=path)
    for key, rows in tracks.items():
        rows.sort(key=lambda r: r.t)
        if len({r.t for r in rows}) != len(rows):
            raise DataError(f"track {key[1]} at {key[0]} has two rows for one t", path=path)
    return tracks


def _read_deaths(path: Path) -> dict[tuple[str, int], tuple[int, int]]:
    """``(position, track) -> (pathway index, onset_t)``."""
    deaths: dict[tuple[str, int], tuple[int, int]] = {}
    for line, row in enumerate(_read_csv(path, DEATH_COLUMNS, "death truth"), start=2):
        try:
            key = (row["position"], int(row["track"]))
            onset_t = int(row["onset_t"])
            pathway = row["pathway"]
        except (TypeError, ValueError) as exc:
            raise DataError(f"line {line}: malformed row {row}", path=path) from exc
        if pathway not in DEATH_PATHWAYS:
            raise DataError(f"line {line}: unknown pathway {pathway!r}", path=path)
        if key in deaths:
            raise DataError(f"line {line}: track {key[1]} at {key[0]} dies twice", path=path)
        deaths[key] = (PATHWAY_CLASSES.index(pathway), onset_t)
    return deaths


def _read_labels(path: Path) -> npt.NDArray[np.int64]:
    try:
        labels = tifffile.imread(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the label image: {exc}", path=path) from exc
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"label image must be integer YX, got {labels.dtype} {labels.shape}", path=path
        )
    return np.asarray(labels, dtype=np.int64)


# ---------------------------------------------------------------- loading


def read_chip_centroids(acquisition: Path) -> dict[tuple[str, int, int], tuple[float, float]]:
    """(position, track, t) -> the centroid (y, x) on the chip: ``tracks.csv`` minus the
    stage drift of ``stage.csv`` (which the nanowell simulator writes)."""
    truth = Path(acquisition) / "ground_truth"
    drift = {
        (r["position"], int(r["t"])): (float(r["dx_px"]), float(r["dy_px"]))
        for r in _read_csv(truth / "stage.csv", ("position", "t", "dx_px", "dy_px"), "stage")
    }
    out: dict[tuple[str, int, int], tuple[float, float]] = {}
    for (position, track), rows in _read_tracks(truth / "tracks.csv").items():
        for r in rows:
            if (position, r.t) not in drift:
                raise DataError(f"no drift for {position} t={r.t}", path=truth / "stage.csv")
            dx, dy = drift[(position, r.t)]
            out[(position, track, r.t)] = (r.y - dy, r.x - dx)
    return out


def load_track_sequences(
    acquisition: Path,
    *,
    crop_px: int = 64,
    window: int = 8,
    stride: int = 4,
    chip_motion: bool = False,
) -> SequenceSet:
    """Every track of a simulated acquisition as windows (see the module docstring);
    with ``chip_motion``, :func:`~livecell.tracking.motion.chip_motion_descriptors` of
    the centroids on the chip (:func:`read_chip_centroids`).

    Raises :class:`DataError`, naming the file, for a missing or malformed
    ``tracks.csv``, ``deaths.csv``, ``stage.csv`` (with ``chip_motion``), frame or
    label image.
    """
    out = Path(acquisition)
    if crop_px < 1 or window < 1 or stride < 1:
        raise ValueError(
            f"crop_px, window and stride must be positive: {crop_px}, {window}, {stride}"
        )
    truth = out / "ground_truth"
    tracks = _read_tracks(truth / "tracks.csv")
    deaths = _read_deaths(truth / "deaths.csv")
    chip = read_chip_centroids(out) if chip_motion else None

    # frame by frame: crops and eccentricities of every cell present
    by_frame: dict[tuple[str, int], list[tuple[int, _Row]]] = {}
    for (position, track), rows in tracks.items():
        for r in rows:
            by_frame.setdefault((position, r.t), []).append((track, r))
    crops: dict[tuple[str, int, int], FloatArray] = {}
    ecc: dict[tuple[str, int, int], float] = {}
    channels: int | None = None
    for position, t in sorted(by_frame):
        frame_path = out / "frames" / position / f"t{t:05d}.ome.tif"
        label_path = truth / position / "TRA" / f"man_track{t:03d}.tif"
        if not frame_path.is_file():
            raise DataError("frame missing (listed in tracks.csv)", path=frame_path)
        if not label_path.is_file():
            raise DataError("label image missing (listed in tracks.csv)", path=label_path)
        image = read_frame(frame_path)
        labels = _read_labels(label_path)
        if labels.shape != image.shape[1:]:
            raise DataError(
                f"label image {labels.shape} does not match the frame {image.shape[1:]}",
                path=label_path,
            )
        if channels is None:
            channels = image.shape[0]
        elif image.shape[0] != channels:
            raise DataError(
                f"{image.shape[0]} channels, earlier frames {channels}", path=frame_path
            )
        boxes = ndimage.find_objects(labels)
        label_image = labels[None].astype(np.float32)  # ids < 2**24 are exact
        for track, row in by_frame[(position, t)]:
            box = boxes[track - 1] if 0 < track <= len(boxes) else None
            if box is None:
                raise DataError(
                    f"no pixels of track {track} (tracks.csv lists it)", path=label_path
                )
            label_crop = crop_centred(label_image, row.x, row.y, crop_px)
            mask_crop = (label_crop == track).astype(np.float32)
            image_crop = crop_centred(image, row.x, row.y, crop_px)
            crops[(position, track, t)] = np.concatenate([image_crop, mask_crop])
            ecc[(position, track, t)] = mask_eccentricity(labels[box] == track)
        del image, labels, label_image

    group_prefix = out.resolve().name
    parts: dict[str, list[npt.NDArray[np.generic]]] = {
        k: [] for k in ("crops", "motion", "frame_t", "frame_death")
    }
    cell_type: list[int] = []
    pathway: list[int] = []
    track_pathway: list[int] = []
    groups: list[str] = []
    names: list[str] = []
    for (position, track), rows in sorted(tracks.items()):
        ts = np.array([r.t for r in rows], dtype=np.int64)
        yx = [(r.y, r.x) if chip is None else chip[(position, track, r.t)] for r in rows]
        describe = motion_descriptors if chip is None else chip_motion_descriptors
        motion = describe(
            np.array(yx, dtype=np.float64).reshape(-1, 2),
            np.array([r.area for r in rows]),
            np.array([ecc[(position, track, r.t)] for r in rows]),
        )
        track_crops = np.stack([crops.pop((position, track, r.t)) for r in rows])
        death_pathway, onset_t = deaths.get((position, track), (0, -1))
        dead = (ts >= onset_t if onset_t >= 0 else np.zeros(ts.shape, bool)).astype(np.float32)
        type_index = CELL_TYPE_CLASSES.index(rows[-1].cell_type)
        for start in window_starts(len(rows), window, stride):
            stop = start + window
            w_t = _padded(ts[start:stop], window)
            w_dead = _padded(dead[start:stop], window)
            parts["crops"].append(_padded(track_crops[start:stop], window))
            parts["motion"].append(_padded(motion[start:stop], window))
            parts["frame_t"].append(w_t)
            parts["frame_death"].append(w_dead)
            cell_type.append(type_index)
            track_pathway.append(death_pathway)
            pathway.append(death_pathway if w_dead[-1] > 0.5 else 0)
            groups.append(f"{group_prefix}/{position}")
            names.append(f"{group_prefix}/{position}/{track}")
    return SequenceSet(
        crops=np.stack(parts["crops"]).astype(np.float32, copy=False),
        motion=np.stack(parts["motion"]).astype(np.float32, copy=False),
        frame_t=np.stack(parts["frame_t"]).astype(np.int64, copy=False),
        frame_death=np.stack(parts["frame_death"]).astype(np.float32, copy=False),
        cell_type=np.array(cell_type, dtype=np.int64),
        pathway=np.array(pathway, dtype=np.int64),
        track_pathway=np.array(track_pathway, dtype=np.int64),
        groups=tuple(groups),
        tracks=tuple(names),
        stride=stride,
        sources=(str(out.resolve()),),
    )


def concatenate_sequences(sets: Iterable[SequenceSet]) -> SequenceSet:
    """One set from several with the same window, crop size, channels and classes."""
    parts = list(sets)
    if not parts:
        raise ValueError("nothing to concatenate")
    first = parts[0]
    for p in parts[1:]:
        if p.crops.shape[1:] != first.crops.shape[1:]:
            raise DataError(
                f"window/crop shapes differ: {p.crops.shape[1:]} vs {first.crops.shape[1:]}",
                path=p.sources[0] if p.sources else "?",
            )
        if (p.cell_type_classes, p.pathway_classes) != (
            first.cell_type_classes,
            first.pathway_classes,
        ):
            raise DataError("class names differ", path=p.sources[0] if p.sources else "?")
    if len(parts) == 1:
        return first
    return SequenceSet(
        crops=np.concatenate([p.crops for p in parts]),
        motion=np.concatenate([p.motion for p in parts]),
        frame_t=np.concatenate([p.frame_t for p in parts]),
        frame_death=np.concatenate([p.frame_death for p in parts]),
        cell_type=np.concatenate([p.cell_type for p in parts]),
        pathway=np.concatenate([p.pathway for p in parts]),
        track_pathway=np.concatenate([p.track_pathway for p in parts]),
        groups=tuple(g for p in parts for g in p.groups),
        tracks=tuple(t for p in parts for t in p.tracks),
        cell_type_classes=first.cell_type_classes,
        pathway_classes=first.pathway_classes,
        stride=first.stride,
        sources=tuple(s for p in parts for s in p.sources),
    )


def load_sequences(
    acquisitions: Sequence[Path],
    *,
    crop_px: int = 64,
    window: int = 8,
    stride: int = 4,
    progress: bool = False,
) -> SequenceSet:
    """:func:`load_track_sequences` of every acquisition, concatenated (``progress``: a bar
    per acquisition read, seconds to minutes each).

    Two acquisitions with the same folder name would share group keys: refused.
    """
    names = [Path(a).resolve().name for a in acquisitions]
    if len(set(names)) != len(names):
        raise DataError(
            "acquisition folder names must differ (they name the split groups)",
            path=", ".join(str(a) for a in acquisitions),
        )
    bar = tqdm(acquisitions, desc="reading tracks", unit="acquisition", disable=not progress)
    return concatenate_sequences(
        load_track_sequences(a, crop_px=crop_px, window=window, stride=stride) for a in bar
    )
