"""Cell Tracking Challenge results from a tracker's updates: track table and relabelling.

Owns the translation of :class:`~livecell.tracking.nanowell.WellUpdate` sequences into
the Challenge's result format: one id per track *segment* (a track measured on
consecutive frames; a track that was missed and re-found continues as a new segment
whose parent is the previous one, as the Challenge has no gaps inside a track),
daughters naming their parent's last segment, lines ``L B E P`` for ``res_track.txt``,
and per-frame maps from the frame's mask labels to those ids. Pure: the files are
read and written by :mod:`livecell.tracking.command`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from livecell.tracking.nanowell import WellUpdate

__all__ = ["CtcResult", "CtcTrack", "ctc_result", "format_res_track", "relabel"]

_LOOKUP_LABELS_MAX = 1 << 20  # label values past this are relabelled without a lookup table


@dataclass(frozen=True, slots=True)
class CtcTrack:
    """One line of ``res_track.txt``: label, first and last frame, parent (0: none)."""

    label: int
    begin: int
    end: int
    parent: int


@dataclass(frozen=True, slots=True)
class CtcResult:
    """The track table and, for each update in order, its mask label -> result label."""

    tracks: tuple[CtcTrack, ...]
    label_maps: tuple[Mapping[int, int], ...]


def ctc_result(updates: Sequence[WellUpdate]) -> CtcResult:
    """Challenge tracks from a tracker's updates (frames numbered by ``update.t``)."""
    open_segment: dict[int, tuple[int, int]] = {}  # track -> (ctc id, last frame)
    last_segment: dict[int, int] = {}
    spans: dict[int, list[int]] = {}  # ctc id -> [begin, end, parent]
    maps: list[dict[int, int]] = []
    next_id = 1
    for update in updates:
        frame_map: dict[int, int] = {}
        for cell in update.cells:
            if not cell.measured or cell.label is None:
                continue
            current = open_segment.get(cell.track)
            if current is not None and current[1] == update.t - 1:
                ctc_id = current[0]
                spans[ctc_id][1] = update.t
            else:
                if current is not None:
                    parent = current[0]
                elif cell.parent is not None:
                    parent = last_segment.get(cell.parent, 0)
                else:
                    parent = 0
                ctc_id = next_id
                next_id += 1
                spans[ctc_id] = [update.t, update.t, parent]
            open_segment[cell.track] = (ctc_id, update.t)
            last_segment[cell.track] = ctc_id
            frame_map[cell.label] = ctc_id
        maps.append(frame_map)
    tracks = tuple(CtcTrack(i, b, e, p) for i, (b, e, p) in sorted(spans.items()))
    return CtcResult(tracks=tracks, label_maps=tuple(maps))


def relabel(labels: npt.NDArray[np.integer], mapping: Mapping[int, int]) -> npt.NDArray[np.uint16]:
    """The label image with each mapped label replaced, unmapped instances cleared."""
    image = np.asarray(labels)
    if image.size == 0:
        return np.zeros(image.shape, np.uint16)
    if mapping and max(mapping.values()) > np.iinfo(np.uint16).max:
        raise ValueError("more than 65535 result labels do not fit a 16-bit mask")
    largest = max(int(image.max()), max(mapping, default=0))
    if largest >= _LOOKUP_LABELS_MAX:  # sparse huge labels: no table indexed by label
        present, inverse = np.unique(image, return_inverse=True)
        results = np.array([mapping.get(int(label), 0) for label in present], np.uint16)
        return results[inverse].reshape(image.shape)
    lookup = np.zeros(largest + 1, np.uint16)
    for label, result in mapping.items():
        lookup[label] = result
    return lookup[image]


def format_res_track(tracks: Sequence[CtcTrack]) -> str:
    """``res_track.txt``'s text: one ``L B E P`` line per track."""
    return "".join(f"{t.label} {t.begin} {t.end} {t.parent}\n" for t in tracks)
