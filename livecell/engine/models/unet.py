"""A small U-Net for per-well cell segmentation: per-pixel background, interior, boundary.

Three resolution levels below the input (so the input side must be a multiple of 8),
two 3x3 convolutions with batch norm and ReLU per level, bilinear upsampling and skip
concatenation on the way up. About 0.5 M weights (2 MB in fp32). The output is logits
``[N, SEGMENTATION_CLASSES, H, W]``; ``livecell.segmentation.unet`` turns their
softmax into instances by seeded watershed.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 (the usual torch alias)

SEGMENTATION_CLASSES = ("background", "interior", "boundary")
"""What each output channel of :class:`UNet` scores, in order."""

DOWNSAMPLING = 8
"""The input side must be a multiple of this."""


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """``[N, in_channels, H, W]`` -> logits ``[N, num_classes, H, W]`` (H, W multiples of 8)."""

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = len(SEGMENTATION_CLASSES),
        widths: tuple[int, int, int, int] = (16, 32, 64, 96),
    ) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.widths = widths
        self.enc0 = _block(in_channels, w0)
        self.enc1 = _block(w0, w1)
        self.enc2 = _block(w1, w2)
        self.bottom = _block(w2, w3)
        self.dec2 = _block(w3 + w2, w2)
        self.dec1 = _block(w2 + w1, w1)
        self.dec0 = _block(w1 + w0, w0)
        self.head = nn.Conv2d(w0, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e0 = self.enc0(x)
        e1 = self.enc1(F.max_pool2d(e0, 2))
        e2 = self.enc2(F.max_pool2d(e1, 2))
        b = self.bottom(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([_up(b), e2], dim=1))
        d1 = self.dec1(torch.cat([_up(d2), e1], dim=1))
        d0 = self.dec0(torch.cat([_up(d1), e0], dim=1))
        out: torch.Tensor = self.head(d0)
        return out


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
