"""Export the per-track CNN-LSTM to ONNX, and check the export against torch.

The graph takes ``crops`` (float32 ``[B, T, C + 1, H, W]``) and ``motion`` (float32
``[B, T, 5]``), both already normalised as the model card says, and returns
``frame_probabilities`` ``[B, T, K]`` and ``sequence_probabilities`` ``[B, K]``: the
softmax is inside the graph, as for patch models (``livecell.engine.export``). The batch
``B`` and the sequence length ``T`` are dynamic; the crop size is fixed in the file.
Same exporter and opset as the patch models (TorchScript-based, ``dynamo=False``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from livecell.engine._extras import require
from livecell.engine.export import MIN_OPSET, export_traced
from livecell.tracking.motion import MOTION_DESCRIPTORS

if TYPE_CHECKING:
    import torch

__all__ = [
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "check_sequence_parity",
    "export_sequence_onnx",
    "onnx_sequence_probabilities",
    "torch_sequence_probabilities",
]

INPUT_NAMES = ("crops", "motion")
OUTPUT_NAMES = ("frame_probabilities", "sequence_probabilities")


def _with_softmax(model: torch.nn.Module) -> torch.nn.Module:
    th = require("torch", extra="train", purpose="ONNX export")

    class _Softmaxed(th.nn.Module):  # type: ignore[name-defined,misc]
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(
            self, crops: torch.Tensor, motion: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor]:
            frame_logits, sequence_logits = self.inner(crops, motion)
            return th.softmax(frame_logits, dim=-1), th.softmax(sequence_logits, dim=-1)

    wrapped: torch.nn.Module = _Softmaxed(model)
    wrapped.eval()
    return wrapped


def export_sequence_onnx(
    model: torch.nn.Module,
    path: str | Path,
    *,
    in_channels: int,
    crop_px: int | tuple[int, int],
    window: int = 8,
    opset: int = MIN_OPSET,
) -> Path:
    """Write ``model`` + softmax to ``path`` as ONNX (dynamic batch and length); return the path.

    ``in_channels`` counts the mask channel (image channels + 1); the graph is traced
    at ``window`` steps of ``crop_px`` crops.
    """
    torch = require("torch", extra="train", purpose="ONNX export")
    height, width = (crop_px, crop_px) if isinstance(crop_px, int) else crop_px
    crops = torch.zeros(2, window, in_channels, height, width, dtype=torch.float32)
    motion = torch.zeros(2, window, len(MOTION_DESCRIPTORS), dtype=torch.float32)
    dims = {0: "batch", 1: "steps"}
    with warnings.catch_warnings():
        # The exporter warns that an LSTM traced with batch > 1 may fix the batch (it does
        # not here: the batch axis is declared dynamic, and the tests run other sizes).
        # The LSTM's input-size check reads a traced shape as a Python bool; the check
        # only guards the feature width, fixed by the model, not B or T.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings(
            "ignore",
            message="Exporting a model to ONNX with a batch_size other than 1",
            category=UserWarning,
        )
        return export_traced(
            model,
            _with_softmax,
            (crops, motion),
            path,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={
                INPUT_NAMES[0]: dims,
                INPUT_NAMES[1]: dims,
                OUTPUT_NAMES[0]: dims,
                OUTPUT_NAMES[1]: {0: "batch"},
            },
            opset=opset,
        )


def torch_sequence_probabilities(
    model: torch.nn.Module, crops: np.ndarray, motion: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The reference: softmax of ``model(crops, motion)`` in eval mode, float32."""
    torch = require("torch", extra="train", purpose="the torch reference")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            frame_logits, sequence_logits = model(
                torch.from_numpy(np.ascontiguousarray(crops, dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(motion, dtype=np.float32)),
            )
            frame: np.ndarray = torch.softmax(frame_logits, dim=-1).numpy()
            sequence: np.ndarray = torch.softmax(sequence_logits, dim=-1).numpy()
    finally:
        model.train(was_training)
    return frame, sequence


def onnx_sequence_probabilities(
    onnx_path: str | Path, crops: np.ndarray, motion: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Run the exported graph once with ONNX Runtime on CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed = {
        INPUT_NAMES[0]: np.ascontiguousarray(crops, dtype=np.float32),
        INPUT_NAMES[1]: np.ascontiguousarray(motion, dtype=np.float32),
    }
    frame, sequence = session.run(list(OUTPUT_NAMES), feed)
    return np.asarray(frame), np.asarray(sequence)


def check_sequence_parity(
    model: torch.nn.Module, onnx_path: str | Path, crops: np.ndarray, motion: np.ndarray
) -> float:
    """Max absolute difference between ONNX Runtime and torch (eval), over both outputs.

    fp32 exports are expected under 1e-4.
    """
    reference = torch_sequence_probabilities(model, crops, motion)
    exported = onnx_sequence_probabilities(onnx_path, crops, motion)
    worst = 0.0
    for name, ref, got in zip(OUTPUT_NAMES, reference, exported, strict=True):
        if ref.shape != got.shape:
            raise ValueError(f"{name} shapes differ: torch {ref.shape}, onnx {got.shape}")
        worst = max(worst, float(np.max(np.abs(ref - got), initial=0.0)))
    return worst
