"""The U-Net segmenter: per-pixel interior/boundary probabilities from ONNX, then watershed.

Each crop is normalised (relative to its median, the well floor), reflect-padded or
tiled to the model's fixed tile side, and every tile of every crop of the frame goes
through the backend in one batched call. Seeds are the connected blobs of confident
cell interior; the cells are the pixels where interior + boundary is likely, flooded
from the seeds over the interior probability (seeded watershed), so touching and
overlapping cells, parted by the boundary class, come out as separate instances.

The exported graph returns ``probabilities`` of shape ``[N, 3 * T * T]`` (per-pixel
softmax over background, interior, boundary, flattened) so that it fits the backend
contract of ``[N, K]`` outputs; unlike a patch classifier's, a row sums to ``T * T``.
Torch is not needed: the model runs through :func:`livecell.engine.backends.open_backend`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from livecell.engine.backends import open_backend
from livecell.engine.bundled import CARD_FILE, bundled_model_dir
from livecell.segmentation.instances import (
    LabelImage,
    fill_holes_per_label,
    remove_border_strips,
    remove_small,
    seeded_watershed,
)

BUNDLED_NAME = "nanowell_segmentation"
CONTRAST_GAIN = 10.0
"""Network input = ``CONTRAST_GAIN * (crop / median(crop) - 1)``."""

NUM_CLASSES = 3  # background, interior, boundary


def normalise_crop(crop: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """The network's input for one raw crop: contrast relative to the well floor (median)."""
    pixels = np.asarray(crop, dtype=np.float32)
    floor = float(np.median(pixels)) if pixels.size else 0.0
    if not np.isfinite(floor) or floor <= 0.0:
        return np.zeros(pixels.shape, dtype=np.float32)
    out: npt.NDArray[np.float32] = (CONTRAST_GAIN * (pixels / floor - 1.0)).astype(np.float32)
    return out


def tile_starts(length_px: int, tile_px: int, overlap_px: int) -> list[int]:
    """Start offsets of tiles of ``tile_px`` covering ``length_px`` with at least ``overlap_px``."""
    if length_px <= tile_px:
        return [0]
    step = max(1, tile_px - overlap_px)
    count = int(np.ceil((length_px - tile_px) / step)) + 1
    return [round(v) for v in np.linspace(0, length_px - tile_px, count)]


@dataclass(frozen=True, slots=True)
class WatershedParams:
    """How probabilities become instances in :class:`UNetSegmenter`."""

    foreground_threshold: float = 0.6  # p(interior) + p(boundary) above this is cell
    seed_threshold: float = 0.7  # p(interior) above this may seed a cell
    min_seed_area_px: int = 25  # interior blobs smaller than this seed nothing
    min_area_px: int = 300  # smaller pieces are fragments: the smallest effector is ~370 px
    border_band_px: int = 6  # instances mostly within this of the crop's edge are wall slivers
    max_border_fraction: float = 0.5
    tile_overlap_px: int = 32  # overlap of tiles when a crop is larger than a tile

    def __post_init__(self) -> None:
        for name in ("foreground_threshold", "seed_threshold"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must lie in (0, 1)")
        if self.min_seed_area_px < 1 or self.min_area_px < 0 or self.tile_overlap_px < 0:
            raise ValueError("min_seed_area_px >= 1, min_area_px >= 0, tile_overlap_px >= 0")
        if self.border_band_px < 0 or not 0.0 <= self.max_border_fraction <= 1.0:
            raise ValueError("border_band_px >= 0, max_border_fraction in [0, 1]")


def instances_from_probabilities(
    interior: npt.NDArray[np.float32],
    boundary: npt.NDArray[np.float32],
    params: WatershedParams = WatershedParams(),
) -> LabelImage:
    """Instance labels (int32) from per-pixel p(interior) and p(boundary) of one crop."""
    foreground = (interior + boundary) > params.foreground_threshold
    cores, count = ndimage.label(interior > params.seed_threshold)
    if count == 0:
        return np.zeros(interior.shape, dtype=np.int32)
    seeds = remove_small(cores.astype(np.int32), params.min_seed_area_px)
    labels = seeded_watershed(1.0 - interior, seeds, foreground | (seeds > 0))
    labels = remove_border_strips(
        fill_holes_per_label(labels), params.border_band_px, params.max_border_fraction
    )
    return remove_small(labels, params.min_area_px)


class UNetSegmenter:
    """Bundled or trained U-Net (``model_dir`` with ``model.onnx`` and ``model_card.json``).

    ``backend`` is any name :func:`open_backend` takes that runs an ONNX file
    (``"onnxruntime"``, the default; ``"auto"``; ``"tensorrt"``); ``threads`` is the
    ONNX Runtime intra-op thread count (0: the library chooses); ``max_batch`` the most
    tiles per inference call.
    """

    name = "unet"

    def __init__(
        self,
        model_dir: str | Path,
        backend: str = "onnxruntime",
        *,
        params: WatershedParams = WatershedParams(),
        threads: int = 0,
        max_batch: int = 16,
        engine_cache_dir: Path | None = None,
    ) -> None:
        folder = Path(model_dir)
        card: dict[str, Any] = json.loads((folder / CARD_FILE).read_text())
        self.card = card
        self.model_path = folder / "model.onnx"
        self.tile_px = int(card["input"]["tile_px"])
        self.params = params
        self._backend = open_backend(
            backend,
            self.model_path,
            max_batch=max_batch,
            threads=threads,
            engine_cache_dir=engine_cache_dir,
        )

    @classmethod
    def bundled(
        cls,
        backend: str = "onnxruntime",
        *,
        params: WatershedParams = WatershedParams(),
        threads: int = 0,
        max_batch: int = 16,
        engine_cache_dir: Path | None = None,
    ) -> UNetSegmenter:
        """The U-Net that ships with livecell (``engine/bundled/nanowell_segmentation``)."""
        return cls(
            bundled_model_dir(BUNDLED_NAME),
            backend,
            params=params,
            threads=threads,
            max_batch=max_batch,
            engine_cache_dir=engine_cache_dir,
        )

    def close(self) -> None:
        """Release the backend (idempotent); ``segment`` after ``close`` raises."""
        self._backend.close()

    def __enter__(self) -> UNetSegmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def probabilities(self, crops: Sequence[np.ndarray]) -> list[npt.NDArray[np.float32]]:
        """Per crop, float32 ``[3, H, W]``: p(background), p(interior), p(boundary)."""
        tile = self.tile_px
        overlap = self.params.tile_overlap_px
        tiles: list[npt.NDArray[np.float32]] = []
        plans: list[tuple[tuple[int, int], tuple[int, int], list[tuple[int, int]]]] = []
        for crop in crops:
            image = normalise_crop(crop)
            if image.ndim != 2:
                raise ValueError(f"a crop must be 2D, got shape {image.shape}")
            height, width = image.shape
            padded_h, padded_w = max(height, tile), max(width, tile)
            padded: npt.NDArray[np.float32] = (
                np.asarray(
                    cv2.copyMakeBorder(
                        image, 0, padded_h - height, 0, padded_w - width, cv2.BORDER_REFLECT_101
                    ),
                    dtype=np.float32,
                )
                if (padded_h, padded_w) != (height, width)
                else image
            )
            corners = [
                (y, x)
                for y in tile_starts(padded_h, tile, overlap)
                for x in tile_starts(padded_w, tile, overlap)
            ]
            tiles.extend(padded[y : y + tile, x : x + tile] for y, x in corners)
            plans.append(((height, width), (padded_h, padded_w), corners))
        if not tiles:
            return []
        batch = np.stack(tiles)[:, None]
        flat = self._backend.predict(batch)
        maps = flat.reshape(len(tiles), NUM_CLASSES, tile, tile)
        results: list[npt.NDArray[np.float32]] = []
        index = 0
        for (height, width), (padded_h, padded_w), corners in plans:
            total = np.zeros((NUM_CLASSES, padded_h, padded_w), dtype=np.float32)
            weight = np.zeros((padded_h, padded_w), dtype=np.float32)
            for y, x in corners:
                total[:, y : y + tile, x : x + tile] += maps[index]
                weight[y : y + tile, x : x + tile] += 1.0
                index += 1
            results.append(np.ascontiguousarray((total / weight)[:, :height, :width]))
        return results

    def segment(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [labels for labels, _ in self.segment_with_foreground(crops)]

    def segment_with_foreground(
        self, crops: Sequence[np.ndarray]
    ) -> list[tuple[np.ndarray, npt.NDArray[np.float32]]]:
        """Per crop, its labels (as :meth:`segment`) and p(cell) = p(interior) + p(boundary),
        which :mod:`livecell.tracking.contact_score` reads to judge contacts."""
        return [
            (instances_from_probabilities(p[1], p[2], self.params), p[1] + p[2])
            for p in self.probabilities(crops)
        ]
