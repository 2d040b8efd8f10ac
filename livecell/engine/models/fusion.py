"""Intermediate fusion for multi-channel fluorescence (seed 004).

Each channel (nuclear stain, membrane dye, a death reporter...) has its own small encoder,
so a channel's early filters learn that channel's textures instead of a mix; the encoders'
feature maps are concatenated at an intermediate layer (1/4 of the input size), and shared
layers then learn how the channels relate before a linear head.

    channel 0 -> stem -> block --.
    channel 1 -> stem -> block --+-- concat -> shared blocks -> pool -> head
    ...                          |
    channel C -> stem -> block --'

With one channel this is a plain small ResNet. Exports to ONNX with a dynamic batch: the
number of channels is fixed at construction, so the per-channel split unrolls.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from livecell.engine.models.resnet import BasicBlock, init_weights

__all__ = ["IntermediateFusionNet"]


class IntermediateFusionNet(nn.Module):
    """One encoder per input channel, fused by concatenation, then shared layers and a head.

    ``forward(x [B, in_channels, H, W]) -> logits [B, num_classes]``. Per channel: a 3x3/2
    stem at ``branch_width`` and a strided BasicBlock to ``branch_width * 2`` (1/4 size).
    Shared: a 1x1 projection of the ``in_channels * branch_width * 2`` fused maps to
    ``shared_widths[0]``, then one strided BasicBlock per entry of ``shared_widths``.
    ``forward_features`` returns the pooled ``[B, feature_dim]`` features; ``shared`` is
    the last convolutional stage (for Grad-CAM).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        branch_width: int = 16,
        shared_widths: tuple[int, ...] = (64, 128),
    ) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 1 or branch_width < 1 or not shared_widths:
            raise ValueError(
                "in_channels, num_classes and branch_width must be positive and "
                "shared_widths non-empty"
            )
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(1, branch_width, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(branch_width),
                nn.ReLU(inplace=True),
                BasicBlock(branch_width, branch_width * 2, stride=2),
            )
            for _ in range(in_channels)
        )
        fused = in_channels * branch_width * 2
        self.fuse = nn.Sequential(
            nn.Conv2d(fused, shared_widths[0], 1, bias=False),
            nn.BatchNorm2d(shared_widths[0]),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        width_in = shared_widths[0]
        for width in shared_widths:
            blocks.append(BasicBlock(width_in, width, stride=2))
            width_in = width
        self.shared = nn.Sequential(*blocks)
        self.feature_dim = width_in
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width_in, num_classes)
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """``[B, in_channels, H, W] -> [B, feature_dim]``: branches, fusion, shared layers."""
        # zip(strict=True) raises ValueError when x has another channel count
        channels = x.unbind(1)
        per_channel = [b(c.unsqueeze(1)) for b, c in zip(self.branches, channels, strict=True)]
        out: Tensor = self.fuse(torch.cat(per_channel, dim=1))
        out = self.shared(out)
        return torch.flatten(self.pool(out), 1)

    def forward(self, x: Tensor) -> Tensor:
        logits: Tensor = self.fc(self.forward_features(x))
        return logits
