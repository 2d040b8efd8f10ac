"""Tiny data and a tiny network for the training tests (the model registry is not needed)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import tifffile
import torch


def tiny_cnn(arch: str, *, in_channels: int, num_classes: int) -> torch.nn.Module:
    """A few-hundred-parameter CNN; ``arch`` is recorded in the card but not used."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(in_channels, 8, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, num_classes),
    )


def write_tree(root: Path, rng: np.random.Generator, *, images_per_class: int = 4) -> Path:
    """``root/{bright,dark}/`` with 64 x 64 images: bright as uint16 TIFF, dark as PNG."""
    for name, level in (("bright", 3000), ("dark", 800)):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(images_per_class):
            pixels = rng.normal(level, 100, size=(64, 64)).clip(0, 65535)
            if name == "bright":
                tifffile.imwrite(folder / f"img{i}.tif", pixels.astype(np.uint16))
            else:
                cv2.imwrite(str(folder / f"img{i}.png"), (pixels / 16).astype(np.uint8))
    return root
