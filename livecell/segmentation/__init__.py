"""Per-well cell segmentation for nanowell (TIMING) phase-contrast frames.

Owns the :class:`Segmenter` contract (``_protocol``), two implementations (the
model-free :class:`ClassicalSegmenter` in ``classical`` and the bundled U-Net in
``unet``), the seeded watershed both end in (``instances``) and the per-cell IoU
score (``scoring``). Nothing here imports torch: the U-Net runs through ONNX Runtime.
"""

from livecell.segmentation._protocol import ForegroundSegmenter, Segmenter
from livecell.segmentation.classical import ClassicalParams, ClassicalSegmenter
from livecell.segmentation.unet import UNetSegmenter, WatershedParams

__all__ = [
    "ClassicalParams",
    "ClassicalSegmenter",
    "ForegroundSegmenter",
    "Segmenter",
    "UNetSegmenter",
    "WatershedParams",
]
