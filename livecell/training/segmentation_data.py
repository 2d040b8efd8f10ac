"""Well crops with their ground-truth instance labels, from nanowell simulator outputs.

Reads ``OUT/frames/<position>/t#####.ome.tif``, the Cell Tracking Challenge labels
``OUT/ground_truth/<position>/TRA/man_track###.tif`` and the well boxes of
``OUT/ground_truth/wells.csv`` (interiors at t = 0). Each frame's stage drift comes
from the walls, as the daemon will find it (:class:`livecell.analysis.wells.WellLattice`;
phase correlation where no lattice fits), and image and labels are cut with the same
shifted box, so they stay aligned whatever the drift estimate's error. Numpy only (no
torch): the benchmark uses it too.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import tifffile
from scipy import ndimage

from livecell.analysis.wells import WellLattice, track_drift
from livecell.segmentation.instances import relabel_consecutive


@dataclass(frozen=True)
class WellCrop:
    """One well at one time point: the raw phase crop and its instance labels (1..n)."""

    acquisition: str
    position: str
    well: str
    t: int
    image: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int32]

    @property
    def cells(self) -> int:
        return int(self.labels.max(initial=0))


@dataclass(frozen=True)
class WellBox:
    well: str
    x0: int
    y0: int
    x1: int
    y1: int


def read_well_boxes(out_dir: Path) -> dict[str, list[WellBox]]:
    """Position -> its well interiors at t = 0, from ``ground_truth/wells.csv``."""
    boxes: dict[str, list[WellBox]] = {}
    with (out_dir / "ground_truth" / "wells.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            boxes.setdefault(row["position"], []).append(
                WellBox(row["well"], int(row["x0"]), int(row["y0"]), int(row["x1"]), int(row["y1"]))
            )
    return boxes


def crop_box(
    image: npt.NDArray[np.generic], box: WellBox, offset_px: tuple[float, float]
) -> npt.NDArray[np.generic] | None:
    """``box`` moved by the drift ``(dx, dy)`` (rounded), cut from ``image``; ``None`` if
    the frame edge cuts it."""
    dx, dy = round(offset_px[0]), round(offset_px[1])
    x0, y0, x1, y1 = box.x0 + dx, box.y0 + dy, box.x1 + dx, box.y1 + dy
    if x0 < 0 or y0 < 0 or y1 > image.shape[0] or x1 > image.shape[1]:
        return None
    return image[y0:y1, x0:x1]


class _Drift:
    """The stage drift of each frame: from the walls (``WellLattice``), as the daemon finds
    it; by phase correlation against the first frame where no lattice fits (a frame too
    small for the wall pattern to show)."""

    def __init__(self) -> None:
        self._lattice: WellLattice | None = WellLattice()
        self._first: npt.NDArray[np.float32] | None = None

    def update(self, image: npt.NDArray[np.float32], t: int) -> tuple[float, float]:
        if self._first is None:
            self._first = image
        if self._lattice is not None:
            try:
                self._lattice.update(image, t)
                return self._lattice.offset_px
            except ValueError:
                self._lattice = None
        return track_drift(self._first, image)


def frame_times(out_dir: Path, position: str) -> list[int]:
    """The time points with a frame for ``position``, in order."""
    folder = out_dir / "frames" / position
    return sorted(int(p.name[1:6]) for p in folder.glob("t*.ome.tif"))


def iter_well_crops(
    out_dir: Path, *, times: Sequence[int] | None = None, every: int = 1, min_cells: int = 0
) -> Iterator[WellCrop]:
    """Every well crop of the acquisition ``out_dir`` at ``times`` (default: every frame),
    keeping every ``every``-th of those.

    Wells with fewer than ``min_cells`` ground-truth cells are skipped. The drift is
    followed over every frame up to the last one asked for, as the daemon would.
    """
    for position, boxes in sorted(read_well_boxes(out_dir).items()):
        available = frame_times(out_dir, position)
        chosen = sorted(set(available if times is None else times) & set(available))
        wanted = set(chosen[:: max(1, every)])
        if not wanted:
            continue
        drift = _Drift()
        for t in available:
            if t > max(wanted):
                break
            image = np.asarray(
                tifffile.imread(out_dir / "frames" / position / f"t{t:05d}.ome.tif"),
                dtype=np.float32,
            )
            offset = drift.update(image, t)
            if t not in wanted:
                continue
            labels = np.asarray(
                tifffile.imread(
                    out_dir / "ground_truth" / position / "TRA" / f"man_track{t:03d}.tif"
                ),
                dtype=np.int32,
            )
            for box in boxes:
                crop = crop_box(image, box, offset)
                truth = crop_box(labels, box, offset)
                if crop is None or truth is None:
                    continue
                well_labels = relabel_consecutive(np.asarray(truth, dtype=np.int32))
                if int(well_labels.max(initial=0)) < min_cells:
                    continue
                yield WellCrop(
                    out_dir.name,
                    position,
                    box.well,
                    t,
                    np.ascontiguousarray(crop, dtype=np.float32),
                    well_labels,
                )


def segmentation_targets(
    labels: npt.NDArray[np.int32], *, boundary_px: int = 2
) -> npt.NDArray[np.int64]:
    """Per-pixel classes for the U-Net: 0 background, 1 cell interior, 2 cell boundary.

    A cell pixel is boundary when a pixel of another label (another cell or background)
    lies within ``boundary_px`` (a (2r+1) square); the rest of the cell is interior, so
    touching and overlapping cells are parted by a boundary line.
    """
    size = 2 * boundary_px + 1
    high = ndimage.maximum_filter(labels, size=size)
    low = ndimage.minimum_filter(labels, size=size)
    cell = labels > 0
    edge = cell & ((high != labels) | (low != labels))
    target = np.zeros(labels.shape, dtype=np.int64)
    target[cell] = 1
    target[edge] = 2
    return target
