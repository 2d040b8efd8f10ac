"""The few CUDA runtime calls TensorRT needs, through ``cuda-python`` (the ``tensorrt`` extra).

cuda-python rather than torch.cuda: a TensorRT host then needs no torch (a multi-GB wheel)
to run the daemon. Every call returns ``(error, *values)``; :func:`call` checks the error.
Written against the cuda-python 12 runtime bindings (``cuda.bindings.runtime``, or the
older ``cuda.cudart`` layout); not run on this project's CPU machines.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from livecell.engine._extras import MissingExtra


def cudart() -> ModuleType:
    """The CUDA runtime bindings, or :class:`MissingExtra` naming ``livecell[tensorrt]``."""
    try:
        from cuda.bindings import runtime

        return runtime  # type: ignore[no-any-return]
    except ImportError:
        pass
    try:
        from cuda import cudart as runtime

        return runtime  # type: ignore[no-any-return]
    except ImportError as exc:
        raise MissingExtra("cuda-python", "tensorrt", "TensorRT inference") from exc


def call(result: Any) -> Any:
    """Unpack a cuda-python ``(error, *values)`` result; raise on an error."""
    runtime = cudart()
    error, *values = result if isinstance(result, tuple) else (result,)
    if error != runtime.cudaError_t.cudaSuccess:
        _, text = runtime.cudaGetErrorString(error)
        raise RuntimeError(f"CUDA error {error}: {text.decode(errors='replace')}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def gpu_count() -> int:
    """Visible CUDA GPUs; 0 when cuda-python or the driver is missing."""
    try:
        runtime = cudart()
    except MissingExtra:
        return 0
    error, count = runtime.cudaGetDeviceCount()
    return int(count) if error == runtime.cudaError_t.cudaSuccess else 0


def gpu_name(device: int = 0) -> str:
    """The GPU's marketing name, e.g. ``NVIDIA H100 80GB HBM3``."""
    properties = call(cudart().cudaGetDeviceProperties(device))
    name = properties.name
    return (name.decode() if isinstance(name, bytes) else str(name)).rstrip("\x00").strip()
