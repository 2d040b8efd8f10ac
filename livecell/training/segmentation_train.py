"""Train the nanowell segmentation U-Net on simulated well crops, export it and check it.

The data are whole well crops (``segmentation_data``) normalised as the segmenter
normalises them (``livecell.segmentation.unet.normalise_crop``), with per-pixel targets
background / interior / boundary. Each step draws random windows of ``window_px``
(mostly over cells; a well is drawn with weight ``0.1 + cells ** crowd_power``, so
crowded wells, where touching cells must be parted, come up more often), flipped and
rotated by multiples of 90 degrees, with a random contrast gain; the loss is
class-weighted cross-entropy (the thin boundary class counts ``boundary_weight`` times).
The learning rate follows a cosine over the steps. At the end the held-out crops are
segmented end to end (probabilities, watershed) and scored per cell
(``livecell.segmentation.scoring``); the model is exported to ONNX with a fixed tile
side and a dynamic batch, and ONNX Runtime is checked against torch. Writes
``model.pt`` (state dict), ``model.onnx`` and ``model_card.json`` into ``out``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from livecell.engine.export import backend_parity, export_onnx, require_parity
from livecell.engine.models.unet import DOWNSAMPLING, SEGMENTATION_CLASSES, UNet
from livecell.segmentation.scoring import SegmentationScore
from livecell.segmentation.unet import (
    CONTRAST_GAIN,
    WatershedParams,
    instances_from_probabilities,
    normalise_crop,
)
from livecell.training.segmentation_data import WellCrop, segmentation_targets
from livecell.training.train import card_header, cosine_lr, save_atomic, write_card


@dataclass(frozen=True, slots=True)
class SegmentationTrainConfig:
    """How the U-Net is trained."""

    steps: int = 2500
    batch_size: int = 8
    window_px: int = 96  # side of the random training windows (multiple of 8)
    tile_px: int = 224  # side the ONNX graph is traced at (a whole well, padded)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    boundary_weight: float = 3.0
    boundary_px: int = 2
    widths: tuple[int, int, int, int] = (16, 32, 64, 96)
    crowd_power: float = 1.0  # a well's sampling weight is 0.1 + cells ** crowd_power
    seed: int = 0
    log_every: int = 100

    def __post_init__(self) -> None:
        for name in ("window_px", "tile_px"):
            if getattr(self, name) % DOWNSAMPLING:
                raise ValueError(f"{name} must be a multiple of {DOWNSAMPLING}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be at least 1")
        if self.crowd_power < 0:
            raise ValueError("crowd_power must be at least 0")


@dataclass(frozen=True)
class SegmentationTrainResult:
    out_dir: Path
    card: dict[str, Any]
    onnx_parity_max_abs_diff: float


class _Windows:
    """Random augmented training windows from whole well crops (cells favoured)."""

    def __init__(self, crops: Sequence[WellCrop], config: SegmentationTrainConfig) -> None:
        self.images = [normalise_crop(c.image) for c in crops]
        self.targets = [
            segmentation_targets(c.labels, boundary_px=config.boundary_px) for c in crops
        ]
        self.window = config.window_px
        self.rng = np.random.default_rng(config.seed)
        cells = np.array([c.cells for c in crops], dtype=np.float64)
        weights = 0.1 + np.where(cells > 0, cells**config.crowd_power, 0.0)
        self.p = weights / weights.sum()

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.window
        xs = np.empty((size, 1, w, w), dtype=np.float32)
        ys = np.empty((size, w, w), dtype=np.int64)
        for i, k in enumerate(self.rng.choice(len(self.images), size=size, p=self.p)):
            image, target = self.images[k], self.targets[k]
            height, width = image.shape
            cells = np.argwhere(target > 0)
            if cells.size and self.rng.random() < 0.8:  # centre near a cell pixel
                cy, cx = cells[self.rng.integers(len(cells))]
                y = int(
                    np.clip(cy - w // 2 + self.rng.integers(-w // 4, w // 4 + 1), 0, height - w)
                )
                x = int(np.clip(cx - w // 2 + self.rng.integers(-w // 4, w // 4 + 1), 0, width - w))
            else:
                y = int(self.rng.integers(0, height - w + 1))
                x = int(self.rng.integers(0, width - w + 1))
            img = image[y : y + w, x : x + w]
            tgt = target[y : y + w, x : x + w]
            turns = int(self.rng.integers(4))
            img, tgt = np.rot90(img, turns), np.rot90(tgt, turns)
            if self.rng.random() < 0.5:
                img, tgt = img[:, ::-1], tgt[:, ::-1]
            xs[i, 0] = img * self.rng.uniform(0.75, 1.33)
            ys[i] = tgt
        return torch.from_numpy(xs), torch.from_numpy(ys)


def _probabilities(
    model: nn.Module, images: Sequence[npt.NDArray[np.float32]], tile: int
) -> list[npt.NDArray[np.float32]]:
    """Per normalised crop (any side <= tile), softmax ``[3, H, W]`` from torch."""
    out = []
    model.eval()
    with torch.no_grad():
        for image in images:
            height, width = image.shape
            padded = np.pad(image, ((0, tile - height), (0, tile - width)), mode="reflect")
            logits = model(torch.from_numpy(np.ascontiguousarray(padded))[None, None])
            out.append(torch.softmax(logits, dim=1)[0, :, :height, :width].numpy())
    return out


def evaluate(
    model: nn.Module,
    crops: Sequence[WellCrop],
    tile: int,
    params: WatershedParams = WatershedParams(),  # noqa: B008
) -> SegmentationScore:
    """Segment ``crops`` end to end with the torch model and score them per cell."""
    score = SegmentationScore()
    probs = _probabilities(model, [normalise_crop(c.image) for c in crops], tile)
    for crop, p in zip(crops, probs, strict=True):
        score.add_well(crop.labels, instances_from_probabilities(p[1], p[2], params))
    return score


def _wrap(model: nn.Module) -> nn.Module:
    wrapped = nn.Sequential(model, nn.Softmax(dim=1), nn.Flatten(1))
    wrapped.eval()
    return wrapped


def export_segmentation_onnx(model: nn.Module, path: Path, tile_px: int) -> Path:
    """``model`` + per-pixel softmax, flattened to ``[N, 3 * tile * tile]``, as ONNX."""
    return export_onnx(model, path, in_channels=1, input_size=tile_px, wrap=_wrap)


def onnx_parity(model: nn.Module, onnx_path: Path, tile_px: int, seed: int = 0) -> float:
    """Largest |ONNX Runtime - torch| over a random batch of three tiles."""
    x = np.random.default_rng(seed).normal(0.0, 1.0, (3, 1, tile_px, tile_px)).astype(np.float32)
    return backend_parity(_wrap(model), onnx_path, x, max_batch=4)


def _summary(score: SegmentationScore) -> dict[str, Any]:
    return {
        "n": score.cells,
        "cells": score.cells,
        "mean_iou": score.mean_iou(),
        "mean_iou_by_cells_per_well": {
            str(n): {"mean_iou": m, "cells": c} for n, (m, c) in score.mean_iou_by_count().items()
        },
    }


def train_segmentation(
    train_crops: Sequence[WellCrop],
    test_crops: Sequence[WellCrop],
    out: Path,
    config: SegmentationTrainConfig = SegmentationTrainConfig(),
    *,
    argv: Sequence[str] = (),
    provenance: dict[str, Any] | None = None,
    progress: bool = True,
) -> SegmentationTrainResult:
    """Train, evaluate on ``test_crops``, export and write the card; see the module docstring."""
    if not train_crops:
        raise ValueError("no training well crops")
    if any(max(c.image.shape) > config.tile_px for c in test_crops):
        raise ValueError(f"a test crop is larger than tile_px={config.tile_px}")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    model = UNet(widths=config.widths)
    windows = _Windows(train_crops, config)
    weight = torch.tensor([1.0, 1.0, config.boundary_weight])
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    started = time.perf_counter()
    running = 0.0
    model.train()
    for step in range(config.steps):
        for group in optimiser.param_groups:
            group["lr"] = cosine_lr(config.lr, step, config.steps)
        x, y = windows.batch(config.batch_size)
        loss = loss_fn(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        running += float(loss.detach())
        if progress and (step + 1) % config.log_every == 0:
            elapsed = time.perf_counter() - started
            mean_loss = running / config.log_every
            print(
                f"step {step + 1}/{config.steps} loss {mean_loss:.4f} ({elapsed:.0f} s)", flush=True
            )
            running = 0.0
    train_s = time.perf_counter() - started
    model.eval()
    save_atomic(model.state_dict(), out / "model.pt")
    score = evaluate(model, test_crops, config.tile_px)
    onnx_path = export_segmentation_onnx(model, out / "model.onnx", config.tile_px)
    parity = onnx_parity(model, onnx_path, config.tile_px)
    require_parity(parity)
    card: dict[str, Any] = {
        **card_header("nanowell segmentation"),
        "classes": list(SEGMENTATION_CLASSES),
        "arch": "unet",
        "model": {
            "builder": "livecell.engine.models.unet.UNet",
            "in_channels": 1,
            "num_classes": len(SEGMENTATION_CLASSES),
            "widths": list(config.widths),
            "weights": sum(p.numel() for p in model.parameters()),
        },
        "input": {
            "layout": "NCHW",
            "dtype": "float32",
            "tile_px": config.tile_px,
            "normalisation": f"{CONTRAST_GAIN} * (crop / median(crop) - 1), per well crop",
            "note": "model.pt gives logits [N, 3, H, W]; model.onnx gives the per-pixel "
            "softmax flattened to [N, 3 * tile_px * tile_px]; instances by seeded watershed "
            "(livecell.segmentation.unet)",
        },
        "training": {
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
            "train_wells": len(train_crops),
            "train_s": round(train_s, 1),
            **(provenance or {}),
        },
        "metrics": {"test": _summary(score), "onnx_parity_max_abs_diff": parity},
        "command": " ".join(argv),
    }
    write_card(card, out)
    (out / "metrics.json").write_text(json.dumps(card["metrics"], indent=2) + "\n")
    return SegmentationTrainResult(out, card, parity)
