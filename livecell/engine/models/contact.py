"""A small CNN that says whether two neighbouring cells touch, from a patch around them.

Input: ``[N, 4, S, S]`` patches (``livecell.tracking.contact_score.pair_patches``: the
normalised image, the two cells' masks and the U-Net's foreground, centred on the point
where the cells come closest); output: one logit per patch, ``[N, 1]``. Four 3x3
convolutions over two poolings, a global max (so any ``S`` divisible by 4 works) and a
two-layer head: about 40 k weights.
"""

from __future__ import annotations

import torch
from torch import nn


class ContactCNN(nn.Module):
    """``[N, in_channels, S, S]`` -> logits ``[N, 1]`` of "these two cells touch"."""

    def __init__(self, *, in_channels: int = 4, width: int = 24, hidden: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(1),
        )
        self.head = nn.Sequential(
            nn.Linear(2 * width, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1)
        )

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.features(patches))
        return out
