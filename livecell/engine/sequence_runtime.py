"""Running an exported per-track sequence model (CNN-LSTM) in the daemon, without torch.

:class:`SequenceModel` opens a model folder (``model.onnx`` + ``model_card.json``, as
``livecell train --task cell_type|death`` and the bundled models write them), applies
the normalisation its card records, and returns per-frame and per-window class
probabilities. Windows are run ``max_batch`` at a time, so memory is bounded by the
batch, not by the number of cells in a frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from livecell.tracking.motion import CHIP_MOTION_DESCRIPTORS, MOTION_DESCRIPTORS

__all__ = ["SequenceModel", "SequenceModelError"]

FloatArray = npt.NDArray[np.float32]


class SequenceModelError(Exception):
    """A sequence model folder is missing a file or its card is not what livecell writes."""


@dataclass(frozen=True)
class SequenceInput:
    """What a card says the model reads: crop size, window length, normalisation, and
    which motion descriptors (``chip``: :data:`CHIP_MOTION_DESCRIPTORS`, on the chip;
    ``camera``: :data:`MOTION_DESCRIPTORS`, in the frame, what cards without a list mean)."""

    classes: tuple[str, ...]
    crop_px: int
    window: int
    motion_frame: str
    image_mean: FloatArray
    image_std: FloatArray
    motion_mean: FloatArray
    motion_std: FloatArray

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> SequenceInput:
        crops = card["input"]["crops"]
        stats = card["input"]["normalisation"]
        if crops["height"] != crops["width"]:
            raise SequenceModelError(f"crops must be square, card says {crops}")
        descriptors = tuple(card["input"].get("motion", {}).get("descriptors", MOTION_DESCRIPTORS))
        frames = {MOTION_DESCRIPTORS: "camera", CHIP_MOTION_DESCRIPTORS: "chip"}
        if descriptors not in frames:
            raise SequenceModelError(f"unknown motion descriptors {descriptors}")

        def column(values: list[float], shape: tuple[int, ...]) -> FloatArray:
            return np.asarray(values, dtype=np.float32).reshape(shape)

        return cls(
            classes=tuple(card["classes"]),
            crop_px=int(crops["height"]),
            window=int(crops["window"]),
            motion_frame=frames[descriptors],
            image_mean=column(stats["crops"]["mean"], (1, 1, -1, 1, 1)),
            image_std=column(stats["crops"]["std"], (1, 1, -1, 1, 1)),
            motion_mean=column(stats["motion"]["mean"], (1, 1, -1)),
            motion_std=column(stats["motion"]["std"], (1, 1, -1)),
        )


class SequenceModel:
    """An ONNX sequence model: ``predict(crops, motion) -> (per_frame, per_window)``.

    ``crops`` are raw ``[N, T, C, H, W]`` (image channels, then the 0/1 mask), ``motion``
    raw ``[N, T, 5]`` descriptors; outputs are float32 probabilities ``[N, T, K]`` and
    ``[N, K]`` over :attr:`classes`.
    """

    def __init__(self, model_dir: Path, *, max_batch: int = 64, threads: int = 1) -> None:
        import onnxruntime as ort

        onnx_path, card_path = model_dir / "model.onnx", model_dir / "model_card.json"
        for path in (onnx_path, card_path):
            if not path.is_file():
                raise SequenceModelError(f"{path} is missing (a sequence model folder needs both)")
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
            self.input = SequenceInput.from_card(card)
        except (ValueError, KeyError, TypeError) as exc:
            raise SequenceModelError(f"{card_path} is not a sequence model card: {exc}") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.name = model_dir.name
        self.max_batch = max_batch

    @property
    def classes(self) -> tuple[str, ...]:
        return self.input.classes

    def predict(self, crops: FloatArray, motion: FloatArray) -> tuple[FloatArray, FloatArray]:
        n, k = crops.shape[0], len(self.classes)
        per_frame = np.empty((n, crops.shape[1], k), dtype=np.float32)
        per_window = np.empty((n, k), dtype=np.float32)
        spec = self.input
        for start in range(0, n, self.max_batch):
            stop = min(start + self.max_batch, n)
            feed = {
                "crops": ((crops[start:stop] - spec.image_mean) / spec.image_std).astype(
                    np.float32, copy=False
                ),
                "motion": ((motion[start:stop] - spec.motion_mean) / spec.motion_std).astype(
                    np.float32, copy=False
                ),
            }
            frame_probs, window_probs = self._session.run(None, feed)
            per_frame[start:stop] = frame_probs
            per_window[start:stop] = window_probs
        return per_frame, per_window
