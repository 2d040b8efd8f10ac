"""``open_backend``: the backend named in ``[engine] backend``, or the best one here.

``"auto"`` picks, in order, and logs which and why (logger ``livecell.engine``):

1. TensorRT, when ``tensorrt`` and ``cuda-python`` import and a GPU is visible;
2. ONNX Runtime on CUDA, when onnxruntime has the CUDA execution provider;
3. ONNX Runtime on CPU.

A named backend whose optional dependency is missing raises
:class:`~livecell.engine._extras.MissingExtra` with the extra to install.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Any, Literal

import structlog

from livecell.engine._extras import MissingExtra
from livecell.engine.backends._batched import DEFAULT_MAX_BATCH
from livecell.engine.backends._protocol import Backend

log = structlog.get_logger("livecell.engine")

BackendName = Literal["auto", "onnxruntime", "torch", "tensorrt", "triton"]
BACKENDS: tuple[str, ...] = ("auto", "onnxruntime", "torch", "tensorrt", "triton")


def tensorrt_usable() -> tuple[bool, str]:
    """Whether TensorRT can run here, and why (not)."""
    if find_spec("tensorrt") is None:
        return False, "tensorrt is not installed (pip install 'livecell[tensorrt]')"
    from livecell.engine import _cuda

    try:
        _cuda.cudart()
    except MissingExtra as exc:
        return False, str(exc)
    if _cuda.gpu_count() == 0:
        return False, "tensorrt is installed but no CUDA GPU is visible"
    return True, f"tensorrt is installed and a GPU is visible ({_cuda.gpu_name()})"


def choose_auto() -> tuple[str, str, str]:
    """``(backend, device, reason)`` that ``"auto"`` picks on this machine."""
    usable, why = tensorrt_usable()
    if usable:
        return "tensorrt", "cuda", why
    from livecell.engine.backends.onnxruntime_backend import cuda_available

    if cuda_available():
        return "onnxruntime", "cuda", f"{why}; onnxruntime has the CUDA execution provider"
    return "onnxruntime", "cpu", f"{why}; onnxruntime has no CUDA execution provider"


def open_backend(
    name: BackendName | str,
    model_path: str | Path,
    *,
    max_batch: int = DEFAULT_MAX_BATCH,
    threads: int = 0,
    engine_cache_dir: Path | None = None,
    **options: Any,
) -> Backend:
    """Open backend ``name`` over ``model_path``; ``options`` go to the backend's constructor.

    ``threads`` is ONNX Runtime's intra-op thread count (and torch's thread count);
    0 lets the library choose. For ``"auto"``, ``model_path`` is the exported ONNX.
    ``engine_cache_dir`` is where TensorRT keeps the engines it builds (the daemon's
    ``state_dir/engine``); None: the user's cache folder. Other backends build nothing.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown engine backend {name!r}; one of {', '.join(BACKENDS)}")
    device: str | None = None
    if name == "auto":
        name, device, reason = choose_auto()
        log.info(
            "engine backend chosen",
            backend=name,
            device=device,
            reason=reason,
            model=str(model_path),
        )
    if name == "onnxruntime":
        from livecell.engine.backends.onnxruntime_backend import OnnxRuntimeBackend

        if device is not None:
            options.setdefault("device", device)
        return OnnxRuntimeBackend(
            model_path, max_batch=max_batch, intra_op_threads=threads, **options
        )
    if name == "torch":
        if find_spec("torch") is None:
            raise MissingExtra("torch", "train", "the torch backend")
        from livecell.engine.backends.torch_backend import TorchBackend

        return TorchBackend(model_path, max_batch=max_batch, threads=threads, **options)
    if name == "tensorrt":
        from livecell.engine.backends.tensorrt_backend import TensorRTBackend

        if engine_cache_dir is not None:
            options.setdefault("cache_dir", engine_cache_dir)
        return TensorRTBackend(model_path, max_batch=max_batch, **options)
    from livecell.engine.backends.triton_backend import TritonBackend

    return TritonBackend(str(model_path), max_batch=max_batch, **options)
