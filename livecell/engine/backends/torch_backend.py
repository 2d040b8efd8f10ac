"""torch itself: eager (or ``torch.compile``-d) inference, for checking and for GPUs
without TensorRT.

Model files (``model_path``):

- ``*.pt2``: a ``torch.export`` program (``livecell.engine.export.export_torch_program``),
  whose output is logits ``[N, K]``. ``torch.export.load`` falls back to unpickling parts
  it cannot read as weights only, so load only ``.pt2`` files you made (the benchmark's
  own); the daemon's patch models are read from their card and ``model.pt``;
- ``*.json``: a model card, either the short form ``{"arch": "resnet18", "in_channels": 1,
  "num_classes": 5, "weights": "model.pt"}`` or the card ``livecell train`` writes (its
  ``input.channels``, ``classes`` and ``files.model``): the architecture is built from the
  registry (``livecell.engine.models.registry.build_model``) and the state dict loaded
  with ``torch.load(weights_only=True)`` (the weights file is relative to the card).

The softmax is applied here. Inference runs under ``torch.inference_mode`` with
channels-last memory format; ``half=True`` (CUDA only) runs in fp16.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from livecell.engine._extras import require
from livecell.engine.backends._batched import DEFAULT_MAX_BATCH, BatchedBackend

if TYPE_CHECKING:
    import torch


def load_torch_model(model_path: str | Path) -> tuple[torch.nn.Module, dict[str, int]]:
    """The model in ``model_path`` (eval mode) and what its card says of it:
    ``in_channels``, ``num_classes`` and, where the input is square, ``input_size``."""
    th = require("torch", extra="train", purpose="the torch backend")
    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"torch model not found: {path}")
    if path.suffix == ".pt2":
        module: torch.nn.Module = th.export.load(str(path)).module()
        return module, {}
    if path.suffix == ".json":
        card: dict[str, Any] = json.loads(path.read_text())
        known, weights = _card_model(card, path)
        from livecell.engine.models.registry import build_model

        model = build_model(
            card["arch"], in_channels=known["in_channels"], num_classes=known["num_classes"]
        )
        state = th.load(path.parent / weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        model.eval()
        return model, known
    raise ValueError(f"{path}: the torch backend reads *.pt2 (torch.export) or *.json (model card)")


def _card_model(card: dict[str, Any], path: Path) -> tuple[dict[str, int], str]:
    """What a short-form or a ``livecell train`` card says of its model, and its weights
    file; ``ValueError`` naming what neither form finds."""
    if "arch" in card and {"in_channels", "num_classes", "weights"} <= card.keys():
        known = {"in_channels": int(card["in_channels"]), "num_classes": int(card["num_classes"])}
        if isinstance(card.get("input_size"), int):
            known["input_size"] = card["input_size"]
        return known, str(card["weights"])
    spec, classes, files = card.get("input"), card.get("classes"), card.get("files")
    if (
        "arch" in card
        and isinstance(spec, dict)
        and "channels" in spec
        and isinstance(classes, list)
        and isinstance(files, dict)
        and "model" in files
    ):
        known = {"in_channels": int(spec["channels"]), "num_classes": len(classes)}
        if spec.get("height") == spec.get("width") and isinstance(spec.get("height"), int):
            known["input_size"] = spec["height"]
        return known, str(files["model"])
    missing = sorted({"arch", "in_channels", "num_classes", "weights"} - card.keys())
    raise ValueError(
        f"{path}: model card lacks {missing} (or, as livecell train writes it, "
        "input.channels, classes and files.model)"
    )


class TorchBackend(BatchedBackend):
    """A torch model; ``device`` ``"auto"`` is CUDA when torch sees a GPU, else CPU."""

    name = "torch"

    def __init__(
        self,
        model_path: str | Path,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        device: Literal["auto", "cpu", "cuda"] = "auto",
        compile: bool = False,
        half: bool = False,
        channels_last: bool = True,
        threads: int = 0,
    ) -> None:
        super().__init__(max_batch=max_batch)
        torch = require("torch", extra="train", purpose="the torch backend")
        self._torch = torch
        model, known = load_torch_model(model_path)
        use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        if use_cuda and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' asked for, but torch sees no CUDA GPU")
        if half and not use_cuda:
            raise ValueError("half=True needs a CUDA device (fp16 on CPU is slow and inexact)")
        if threads > 0:
            torch.set_num_threads(threads)
        self._device = torch.device("cuda:0" if use_cuda else "cpu")
        self._dtype = torch.float16 if half else torch.float32
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        model = model.to(device=self._device, dtype=self._dtype)
        model = model.to(memory_format=self._memory_format)  # type: ignore[call-overload]
        self._model: Any = torch.compile(model) if compile else model
        self.device = str(self._device)
        self.model_name = Path(model_path).stem
        if known:
            side = known.get("input_size")
            self.input_shape = (known["in_channels"], side, side)
            self.num_classes = known["num_classes"]

    def predict(self, patches: np.ndarray) -> np.ndarray:
        self._check_open()
        patches = self._validated(patches)
        if self.num_classes == 0 and len(patches) > 0:
            # Not in a card: learnt from the first batch (logits' width).
            self.num_classes = int(self._logits(np.ascontiguousarray(patches[:1])).shape[1])
        return super().predict(patches)

    def _logits(self, batch: np.ndarray) -> Any:
        th = self._torch
        with th.inference_mode():
            x = th.from_numpy(batch).to(self._device, non_blocking=True)
            x = x.to(dtype=self._dtype, memory_format=self._memory_format)
            return self._model(x)

    def _run_into(self, batch: np.ndarray, out: np.ndarray) -> None:
        torch = self._torch
        with torch.inference_mode():
            probabilities = torch.softmax(self._logits(batch).float(), dim=1)
            out[...] = probabilities.cpu().numpy()

    def _release(self) -> None:
        self._model = None
