"""Datasets under the watched folder: which files belong to one, and its frames as they come.

The watch source hands every file it notices to :meth:`DatasetFollower.claims`. A file
that belongs to a multi-frame dataset (an NDTiff folder, a Micro-Manager OME-TIFF stack,
a Tomocube TCF file) is claimed here, so the plain-TIFF path never reads a stack file
as one frame, and the dataset gets a reader (``livecell.stream.formats``) the first time
one of its files is seen. :meth:`DatasetFollower.items` polls every reader and turns
what it hands out into frames and rejections.

Exactly-once: each image has a stable ``unit`` name (``<dataset>#<image>``). It is the
frame's ``path``, so the journal records it as done with the frame, and a restarted
reader skips the units the journal already has (``is_done``) without reading them.

Which datasets are followed depends on ``source.format``: ``auto`` recognises all three
by their names (``NDTiff.index``, ``*_MMStack*.ome.tif``, ``*.tcf``), a named format only
its own, and ``tiff`` none.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from livecell.config import SourceConfig
from livecell.events import stable_id
from livecell.frames import Frame, FrameKey, Rejection
from livecell.stream.formats._protocol import DatasetImage, DatasetItem, DatasetReader

log = structlog.get_logger("livecell.stream.datasets")

DatasetKind = Literal["ndtiff", "mmstack", "tcf"]
NDTIFF_INDEX = "NDTiff.index"
NDTIFF_V2_FOLDER = "Full resolution"
_DOWNSAMPLED = re.compile(r"Downsampled_x\d+")  # NDTiff pyramid levels: not followed
_MMSTACK = re.compile(r"_mmstack.*\.ome\.tiff?$", re.IGNORECASE)
_SPLIT_SUFFIX = re.compile(r"_(\d+)(\.ome\.tiff?)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class DatasetSpot:
    """A dataset: its kind and the path its reader opens (folder, first stack file, file)."""

    kind: DatasetKind
    path: Path


def find_dataset(path: Path, root: Path, kinds: frozenset[str]) -> DatasetSpot | None:
    """The dataset ``path`` belongs to, if any, among the ``kinds`` followed."""
    if "ndtiff" in kinds:
        folder = _ndtiff_folder(path, root)
        if folder is not None:
            return DatasetSpot("ndtiff", folder)
    name = path.name
    if "mmstack" in kinds and _MMSTACK.search(name):
        return DatasetSpot("mmstack", _first_stack_file(path))
    if "tcf" in kinds and name.lower().endswith(".tcf"):
        return DatasetSpot("tcf", path)
    return None


def _ndtiff_folder(path: Path, root: Path) -> Path | None:
    """The NDTiff dataset folder holding ``path`` (v3: beside ``NDTiff.index``; v2 and
    pyramids: the folder above ``Full resolution`` and ``Downsampled_x2``...), searching
    up to ``root``."""
    folder = path.parent
    while folder == root or folder.is_relative_to(root):
        if (folder / NDTIFF_INDEX).is_file():
            in_pyramid = folder.name == NDTIFF_V2_FOLDER or _DOWNSAMPLED.fullmatch(folder.name)
            return folder.parent if in_pyramid else folder
        if (folder / NDTIFF_V2_FOLDER / NDTIFF_INDEX).is_file():
            return folder
        if folder == root:
            return None
        folder = folder.parent
    return None


def _first_stack_file(path: Path) -> Path:
    """``acq_MMStack_Pos0_1.ome.tif`` -> ``acq_MMStack_Pos0.ome.tif`` (when that exists)."""
    split = _SPLIT_SUFFIX.search(path.name)
    if split is None:
        return path
    first = path.with_name(path.name[: split.start()] + split.group(2))
    return first if first.exists() else path


def followed_kinds(config: SourceConfig) -> frozenset[str]:
    if config.format == "auto":
        return frozenset({"ndtiff", "mmstack", "tcf"})
    if config.format == "tiff":
        return frozenset()
    return frozenset({config.format})


def holds_datasets(folder: Path, config: SourceConfig) -> bool:
    """True when ``folder`` holds a dataset the watch source would follow. ``replay
    --workers`` shares positions by file path, which does not see inside datasets."""
    kinds = followed_kinds(config)
    return bool(kinds) and any(
        find_dataset(path, folder, kinds) is not None
        for path in folder.rglob("*")
        if path.is_file()
    )


def open_reader(
    spot: DatasetSpot, config: SourceConfig, is_done: Callable[[str], bool]
) -> DatasetReader:
    """The reader for ``spot``; format modules are imported only when a dataset needs them."""
    if spot.kind == "ndtiff":
        from livecell.stream.formats.ndtiff import NDTiffReader

        return NDTiffReader(spot.path, is_done=is_done, stack=config.stack)
    if spot.kind == "mmstack":
        from livecell.stream.formats.mmstack import MMStackReader

        return MMStackReader(spot.path, is_done=is_done, stack=config.stack)
    from livecell.stream.formats.tcf import TCFReader

    return TCFReader(spot.path, is_done=is_done, view=config.tcf_view)


class DatasetFollower:
    """Readers of the datasets seen so far under ``root``; all on the watch source's thread."""

    def __init__(
        self,
        config: SourceConfig,
        root: Path,
        *,
        is_done: Callable[[str], bool],
        owns: Callable[[FrameKey | None], bool] | None = None,
        idle_s: float | None = None,
    ) -> None:
        """``idle_s``: let an unfinished dataset's reader go once nothing of it has changed
        for this long (following live); ``None``: never (a replay reads to the end)."""
        self._config = config
        self._root = root
        self._kinds = followed_kinds(config)
        self._is_done = is_done
        self._owns = owns
        self._idle_s = idle_s
        self._readers: dict[Path, DatasetReader] = {}
        self._active_at: dict[Path, float] = {}  # monotonic: the dataset's last change or image
        self._failed: set[Path] = set()
        self._finished_logged: set[Path] = set()
        self.follows_plain_tiffs = config.format in ("auto", "tiff")

    def claims(self, path: Path) -> bool:
        """True when ``path`` belongs to a followed dataset (whose reader is opened now)."""
        if not self._kinds:
            return False
        spot = find_dataset(path, self._root, self._kinds)
        if spot is None:
            return False
        if spot.path not in self._readers and spot.path not in self._failed:
            self._open(spot)
        if spot.path in self._readers:
            self._active_at[spot.path] = time.monotonic()
        return True

    def _open(self, spot: DatasetSpot) -> None:
        try:
            self._readers[spot.path] = open_reader(spot, self._config, self._is_done)
        except Exception as exc:  # an unreadable dataset must never stop the watcher
            self._failed.add(spot.path)
            log.error("cannot follow dataset", kind=spot.kind, path=str(spot.path), error=str(exc))
            return
        log.info("following dataset", kind=spot.kind, path=str(spot.path))

    def forget(self, path: Path) -> None:
        """A dataset's path was deleted: its reader goes."""
        if path in self._readers:
            self._let_go(path)

    def items(self) -> Iterator[Frame | Rejection]:
        """Poll every reader once; its new frames and problems, in its order."""
        for path, reader in list(self._readers.items()):
            try:
                found = reader.poll()
            except Exception:  # a reader bug on one dataset must not stop the others
                log.exception("dataset reader failed", path=str(path))
                continue
            if found:
                self._active_at[path] = time.monotonic()
            for item in found:
                converted = self._converted(reader, item)
                if converted is not None:
                    yield converted
            # Let a reader go (its open files, its per-image records) once its dataset is
            # read to the end, or once it has sat unchanged for idle_s (a crashed writer):
            # a daemon follows acquisition after acquisition for weeks. A file of it that
            # changes again opens it afresh, and the journal skips what was read.
            if reader.finished and not reader.behind:
                if path not in self._finished_logged:
                    self._finished_logged.add(path)
                    log.info("acquisition finished", path=str(path))
                self._let_go(path)
            elif (idle_for_s := self._idle_for_s(path)) is not None:
                log.info(  # a crashed writer, or time points further apart than idle_s
                    "dataset unchanged and unfinished: let go until one of its files changes",
                    path=str(path),
                    idle_s=round(idle_for_s, 1),
                    images_incomplete=reader.incomplete,
                )
                self._let_go(path)

    def _idle_for_s(self, path: Path) -> float | None:
        """How long the dataset at ``path`` has been idle, if past ``idle_s``; else None."""
        if self._idle_s is None or self._readers[path].behind:
            return None
        idle_for_s = time.monotonic() - self._active_at[path]
        return idle_for_s if idle_for_s >= self._idle_s else None

    def _let_go(self, path: Path) -> None:
        self._readers.pop(path).close()
        del self._active_at[path]

    @property
    def following(self) -> list[Path]:
        """The datasets whose readers are open (a finished one's is let go)."""
        return list(self._readers)

    def behind(self) -> bool:
        """True when a reader stopped at its batch limit last time: poll again at once."""
        return any(reader.behind for reader in self._readers.values())

    def unfinished(self) -> list[Rejection]:
        """At the end of a replay: one rejection per dataset left with images begun but not
        complete (a crashed or aborted acquisition).

        Live, such a dataset may yet go on; a replay has no later, and would otherwise
        leave those images out without a word."""
        out: list[Rejection] = []
        if self._owns is not None and not self._owns(None):
            return out  # reported once, by the replay worker that owns keyless events
        for path, reader in self._readers.items():
            if reader.finished or not reader.incomplete:
                continue
            out.append(
                Rejection(
                    reason="unfinished-dataset",
                    detail=f"{path.name} ends with images its writer began but never "
                    "completed (a crashed or aborted acquisition?); they were not analysed",
                    completed_at=time.time(),
                    fingerprint=stable_id(str(path), "unfinished-dataset"),
                    path=f"{path}#unfinished",
                    quarantine=False,
                )
            )
        return out

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()
        self._active_at.clear()

    def _converted(self, reader: DatasetReader, item: DatasetItem) -> Frame | Rejection | None:
        acquisition = self._config.acquisition or dataset_acquisition(reader.path, self._root)
        if isinstance(item, DatasetImage):
            image_key = FrameKey(acquisition, item.position, item.t)
            if self._owns is not None and not self._owns(image_key):
                return None
            return Frame(
                key=image_key,
                pixels=item.pixels,
                axes=item.axes,
                source="watch",
                completed_at=item.completed_at,
                path=item.unit,
                pixel_size_um=item.pixel_size_um,
                channels=item.channels,
                in_dataset=True,
            )
        key: FrameKey | None = None
        if item.position is not None and item.t is not None:
            key = FrameKey(acquisition, item.position, item.t)
        if self._owns is not None and not self._owns(key):
            return None
        return Rejection(
            reason=item.reason,
            detail=item.detail,
            completed_at=item.completed_at,
            fingerprint=stable_id(item.unit, item.reason),
            key=key,
            path=item.unit,
            quarantine=False,  # the image lives inside a file that holds good ones too
        )


def dataset_acquisition(path: Path, root: Path) -> str:
    """The folders between ``root`` and the dataset, then its name (``day2/acq_1`` for
    ``ROOT/day2/acq_1/``): as for single files, a data root that holds each day's
    experiment in a folder of its own repeats dataset names without mixing them."""
    try:
        above = path.parent.relative_to(root).parts
    except ValueError:  # the watched folder is the dataset itself
        above = ()
    return "/".join((*above, _dataset_name(path)))


def _dataset_name(path: Path) -> str:
    """The acquisition name: ``acq_1`` for the NDTiff folder ``acq_1/``, ``acq`` for the
    stack ``acq_MMStack_Pos0.ome.tif``, ``cell`` for ``cell.TCF``."""
    name = path.name
    stack = _MMSTACK.search(name)
    if stack is not None:
        return name[: stack.start()]
    for suffix in (".ome.tiff", ".ome.tif", ".tcf", ".TCF"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
