"""The segmentation U-Net's shape contract and size."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from livecell.engine.models.unet import SEGMENTATION_CLASSES, UNet  # noqa: E402

MAX_WEIGHTS_MB = 5.0


def test_per_pixel_logits_of_the_input_size() -> None:
    model = UNet().eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 1, 64, 96))
    assert tuple(out.shape) == (2, len(SEGMENTATION_CLASSES), 64, 96)


def test_weights_fit_the_budget() -> None:
    weights = sum(p.numel() for p in UNet().parameters())
    assert weights * 4 / 1e6 < MAX_WEIGHTS_MB
