"""Export a patch classifier to ONNX, and check the export against torch.

The exported graph takes ``patches`` (float32, ``[N, C, H, W]``, N dynamic) and returns
``probabilities`` (float32, ``[N, K]``): the softmax is applied inside the graph, so every
backend returns probabilities without knowing what the model's last layer was.

The ONNX file is the portable artefact: TensorRT engines are built from it on the target
machine (``livecell.engine.tensorrt_build``). Export uses torch's TorchScript-based
exporter (``dynamo=False``): it needs only the ``onnx`` package (in the ``train`` extra),
writes the opset asked for, and its graphs are the ones TensorRT's ONNX parser is tested
against. torch >= 2.9 marks that exporter deprecated in favour of the ``torch.export``
one, which needs ``onnxscript`` and raises the opset to 18. Deprecation warnings are
silenced for the duration of the export call only, so they do not fail the strict suite.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from livecell.engine._extras import require

if TYPE_CHECKING:
    import torch

INPUT_NAME = "patches"
OUTPUT_NAME = "probabilities"
MIN_OPSET = 17
MAX_OPSET = 20  # the highest torch.onnx's TorchScript exporter writes
PARITY_TOLERANCE = 1e-4
"""Largest ONNX Runtime vs torch difference an fp32 export may show."""


def require_parity(parity: float) -> None:
    """Raise when an export's ONNX Runtime vs torch difference ``parity`` is too large."""
    if parity > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX Runtime differs from torch by {parity:.2e} > {PARITY_TOLERANCE}")


def with_softmax(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` (logits ``[N, K]``) followed by a softmax over classes, in eval mode."""
    th = require("torch", extra="train", purpose="ONNX export")
    wrapped: torch.nn.Module = th.nn.Sequential(model, th.nn.Softmax(dim=1))
    wrapped.eval()
    return wrapped


def export_onnx(
    model: torch.nn.Module,
    path: str | Path,
    *,
    in_channels: int,
    input_size: int | tuple[int, int],
    opset: int = MIN_OPSET,
    wrap: Callable[[torch.nn.Module], torch.nn.Module] = with_softmax,
) -> Path:
    """Write ``wrap(model)`` (default: ``model`` + softmax) to ``path`` as ONNX,
    ``patches [N, C, H, W] -> probabilities [N, ...]`` with a dynamic batch axis; return
    the path.

    ``input_size`` is the patch side (or ``(height, width)``) the graph is traced at; the
    spatial size is fixed in the file, the batch is not.
    """
    torch = require("torch", extra="train", purpose="ONNX export")
    height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
    return export_traced(
        model,
        wrap,
        (torch.zeros(2, in_channels, height, width, dtype=torch.float32),),
        path,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        opset=opset,
    )


def export_traced(
    model: torch.nn.Module,
    wrap: Callable[[torch.nn.Module], torch.nn.Module],
    example: tuple[torch.Tensor, ...],
    path: str | Path,
    *,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
    opset: int = MIN_OPSET,
) -> Path:
    """The exporter every livecell model goes through: ``wrap(model)`` (the model with its
    softmax, in eval mode) traced at ``example`` into ``path`` (TorchScript-based,
    ``dynamo=False``), ``model`` left in the mode it was in. Callers add their own
    warning filters around it.
    """
    torch = require("torch", extra="train", purpose="ONNX export")
    require("onnx", extra="train", purpose="ONNX export")
    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset}: livecell exports opset {MIN_OPSET} or later")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter and its helpers are deprecated in torch >= 2.9.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                wrap(model),
                example,
                str(path),
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic_axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    finally:
        model.train(was_training)
    return path


def torch_probabilities(model: torch.nn.Module, patches: np.ndarray) -> np.ndarray:
    """The reference: ``softmax(model(patches))`` in eval mode, float32 ``[N, K]``."""
    torch = require("torch", extra="train", purpose="the torch reference")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            logits = model(torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32)))
            probabilities: np.ndarray = torch.softmax(logits, dim=1).numpy()
    finally:
        model.train(was_training)
    return probabilities


def onnx_probabilities(onnx_path: str | Path, patches: np.ndarray) -> np.ndarray:
    """Run the exported graph once with ONNX Runtime on CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed = {INPUT_NAME: np.ascontiguousarray(patches, dtype=np.float32)}
    result: np.ndarray = session.run([OUTPUT_NAME], feed)[0]
    return result


def check_parity(
    model: torch.nn.Module, onnx_path: str | Path, inputs: np.ndarray | Sequence[np.ndarray]
) -> float:
    """Max absolute difference between ONNX Runtime and torch (eval) probabilities.

    ``inputs`` is one ``[N, C, H, W]`` array or several (each checked; the max is returned).
    fp32 exports are expected under 1e-4.
    """
    batches = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    worst = 0.0
    for batch in batches:
        reference = torch_probabilities(model, batch)
        exported = onnx_probabilities(onnx_path, batch)
        if reference.shape != exported.shape:
            raise ValueError(f"shapes differ: torch {reference.shape}, onnx {exported.shape}")
        worst = max(worst, float(np.max(np.abs(reference - exported), initial=0.0)))
    return worst


def backend_parity(
    wrapped: torch.nn.Module, onnx_path: str | Path, x: np.ndarray, *, max_batch: int
) -> float:
    """Largest |ONNX Runtime - torch| on ``x``: ``wrapped`` is the model as exported (its
    head included, eval mode), ONNX Runtime runs through livecell's backend (one thread)."""
    torch = require("torch", extra="train", purpose="the torch reference")
    from livecell.engine.backends import open_backend

    with torch.no_grad():
        reference = wrapped(torch.from_numpy(x)).numpy()
    backend = open_backend("onnxruntime", onnx_path, max_batch=max_batch, threads=1)
    try:
        got = backend.predict(x)
    finally:
        backend.close()
    return float(np.max(np.abs(got - reference)))


def onnx_opset(onnx_path: str | Path) -> int:
    """The default-domain opset an ONNX file declares."""
    onnx = require("onnx", extra="train", purpose="reading an ONNX file's opset")
    proto = onnx.load(str(onnx_path), load_external_data=False)
    return int(next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")))


def export_torch_program(
    model: torch.nn.Module,
    path: str | Path,
    *,
    in_channels: int,
    input_size: int | tuple[int, int],
    max_batch: int = 65536,
) -> Path:
    """Save ``model`` (logits out) as a ``torch.export`` program with a dynamic batch axis.

    The torch backend reads it (``*.pt2``) without needing the model's Python class.
    """
    torch = require("torch", extra="train", purpose="torch.export")
    height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        batch = torch.export.Dim("batch", min=1, max=max_batch)
        example = torch.zeros(2, in_channels, height, width, dtype=torch.float32)
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
        torch.export.save(program, str(path))
    finally:
        model.train(was_training)
    return path
