"""Helpers for the engine tests (imported by name: keep this module name unique in tests/)."""

from __future__ import annotations

import torch

PATCH_CLASSES = ["live_control", "live_treated", "apoptosis", "necroptosis", "necrosis"]


def compact_model() -> torch.nn.Module:
    """The registry's compact model, 1 channel, five classes, seeded weights, eval mode."""
    from livecell.engine.models.registry import build_model

    torch.manual_seed(0)
    return build_model("compact", in_channels=1, num_classes=len(PATCH_CLASSES)).eval()
