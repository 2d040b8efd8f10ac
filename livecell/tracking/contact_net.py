"""The contact net: which neighbouring cells of a frame's wells touch, judged by a small CNN.

Owns :class:`ContactNet`, which runs the bundled (or a trained) ``nanowell_contact``
model through an engine backend (ONNX Runtime by default; torch is not needed). For each
well it takes the candidate pairs (:func:`~livecell.tracking.contact_score.candidate_pairs`,
cells at most ``max_gap_px`` apart), cuts each pair's patch around the point where the two
come closest (:func:`~livecell.tracking.contact_score.pair_patches`), scores every patch
of the frame in one batched call and keeps the pairs whose probability of touching is at
least the card's ``threshold``.

Why a CNN over the logistic :class:`~livecell.tracking.contact_score.ContactModel`: the
simulator (and a biologist) calls two cells in contact when their full masks come within
one pixel, and most contacts in a nanowell are one-frame brushes at that limit. Four
summary numbers of the U-Net's foreground did not separate them better with more data or
a boosted tree; the pixels around the closest point do (docs/nanowell.md, *Contacts*).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from livecell.engine.backends import open_backend
from livecell.engine.bundled import CARD_FILE, bundled_model_dir
from livecell.tracking.contact_score import CandidatePairs, candidate_pairs, pair_patches

__all__ = ["BUNDLED_NAME", "ContactNet", "WellForContacts"]

BUNDLED_NAME = "nanowell_contact"


@dataclass(frozen=True, slots=True)
class WellForContacts:
    """One well of a frame as the net reads it: the U-Net's normalised crop
    (``livecell.segmentation.unet.normalise_crop``), its labels and its foreground."""

    image: npt.NDArray[np.float32]
    labels: npt.NDArray[np.integer]
    foreground: npt.NDArray[np.floating]


class ContactNet:
    """``model_dir`` holds ``model.onnx`` and ``model_card.json`` (``livecell train --task
    contact``); ``backend`` and ``threads`` as for :func:`open_backend`."""

    def __init__(
        self,
        model_dir: str | Path,
        backend: str = "onnxruntime",
        *,
        threads: int = 0,
        max_batch: int = 256,
        engine_cache_dir: Path | None = None,
    ) -> None:
        folder = Path(model_dir)
        card: dict[str, Any] = json.loads((folder / CARD_FILE).read_text())
        self.card = card
        self.half_px = int(card["input"]["patch_px"]) // 2
        self.threshold = float(card["threshold"])
        self.near_px = float(card["input"]["near_px"])
        self.max_gap_px = float(card["input"]["max_gap_px"])
        self._backend = open_backend(
            backend,
            folder / "model.onnx",
            max_batch=max_batch,
            threads=threads,
            engine_cache_dir=engine_cache_dir,
        )

    @classmethod
    def bundled(
        cls,
        backend: str = "onnxruntime",
        *,
        threads: int = 0,
        engine_cache_dir: Path | None = None,
    ) -> ContactNet:
        """The contact net that ships with livecell (``engine/bundled/nanowell_contact``)."""
        return cls(
            bundled_model_dir(BUNDLED_NAME),
            backend,
            threads=threads,
            engine_cache_dir=engine_cache_dir,
        )

    def close(self) -> None:
        """Release the backend (idempotent)."""
        self._backend.close()

    def __enter__(self) -> ContactNet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def probabilities(self, patches: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """p(touching) ``[P]`` of patches ``[P, 4, S, S]`` (:func:`pair_patches`)."""
        if len(patches) == 0:
            return np.zeros(0, np.float32)
        return np.asarray(self._backend.predict(patches)[:, 0], np.float32)

    def candidates(self, well: WellForContacts) -> CandidatePairs:
        return candidate_pairs(
            well.labels, well.foreground, near_px=self.near_px, max_gap_px=self.max_gap_px
        )

    def contact_pairs(self, wells: Sequence[WellForContacts]) -> list[npt.NDArray[np.int64]]:
        """Per well, the label pairs ``[P, 2]`` (``a < b``) the net calls touching."""
        found = [self.candidates(w) for w in wells]
        patches = [
            pair_patches(w.image, w.labels, w.foreground, f, self.half_px)
            for w, f in zip(wells, found, strict=True)
        ]
        if not any(len(f) for f in found):
            return [f.pairs for f in found]
        touching = self.probabilities(np.concatenate(patches)) >= self.threshold
        ends = np.cumsum([len(f) for f in found])
        return [f.pairs[keep] for f, keep in zip(found, np.split(touching, ends[:-1]), strict=True)]
