"""The segmenter contract: a batch of well crops in, one instance label image per crop out.

Lifecycle::

    segmenter = UNetSegmenter.bundled()       # or ClassicalSegmenter(), any Segmenter
    labels = segmenter.segment(crops)         # once per frame, with every well's crop
    segmenter.close()                         # at shutdown

- Each crop is one well's interior: a 2D float32 array of raw camera values, the
  well box of the first frame shifted by the current stage drift; the bright wall
  halo may show along its border. Crops may differ in shape.
- ``segment`` returns one int32 label image per crop, of the crop's shape: 0 is
  background, 1..n the cell instances of that well (numbered consecutively).
  Touching and overlapping cells are separate instances; an empty well is all 0.
- The whole frame's wells go in one call so a model can batch them; an empty
  sequence gives an empty list. A segmenter is used from one thread at a time.
- A segmenter that has per-pixel probabilities may also offer
  ``segment_with_foreground(crops)`` (:class:`ForegroundSegmenter`): each crop's labels
  with its float32 p(cell) image, from which the nanowell stage judges contacts
  (:mod:`livecell.tracking.contact_score`); without it contacts come from mask
  adjacency alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt


@runtime_checkable
class Segmenter(Protocol):
    """Anything that turns well crops into instance label images; see the module docstring."""

    name: str

    def segment(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One int32 label image per crop (0 background, 1..n cells), same shapes."""
        ...

    def close(self) -> None:
        """Release sessions and buffers; idempotent."""
        ...


@runtime_checkable
class ForegroundSegmenter(Segmenter, Protocol):
    """A :class:`Segmenter` that also gives each crop's foreground probability."""

    def segment_with_foreground(
        self, crops: Sequence[np.ndarray]
    ) -> list[tuple[np.ndarray, npt.NDArray[np.float32]]]:
        """Per crop: its label image (as ``segment``) and float32 p(cell), same shape."""
        ...
