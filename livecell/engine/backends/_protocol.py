"""The inference backend contract: a batch of patches in, class probabilities out.

Lifecycle::

    backend = open_backend("auto", "model.onnx", max_batch=64)   # or a class directly
    probabilities = backend.predict(patches)   # any number of times, any N (also 0)
    backend.close()                            # once; predict after close raises

- Constructed from a model path plus options (batch size, threads, device). Loading,
  session creation and any engine build happen in the constructor, so the first
  ``predict`` is not slower than the others for that reason.
- ``predict(patches)`` takes float32 ``[N, C, H, W]`` (other float dtypes are converted)
  and returns float32 ``[N, K]`` probabilities (rows sum to 1). It never runs more than
  ``max_batch`` patches at once: a frame with thousands of cells is split internally, so
  memory is bounded by ``max_batch``, not by the frame. Results are written straight into
  the one ``[N, K]`` output array.
- ``close()`` releases sessions, GPU buffers, streams and connections; it is idempotent.
  Backends are also context managers.
- ``name`` is the backend kind (``"onnxruntime"``, ``"torch"``, ``"tensorrt"``,
  ``"triton"``), ``model_name`` the model file's stem (or the Triton model name), and
  ``device`` where it runs (``"cpu"``, ``"cuda:0"``, a Triton URL).

A backend instance is used from one thread at a time.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Backend(Protocol):
    """An open inference backend; see the module docstring for the lifecycle."""

    name: str
    model_name: str
    device: str
    max_batch: int
    input_shape: tuple[int | None, int | None, int | None]  # [C, H, W]; None: not fixed
    num_classes: int  # 0 until known

    def predict(self, patches: np.ndarray) -> np.ndarray:
        """Probabilities float32 ``[N, K]`` for patches float32 ``[N, C, H, W]``."""
        ...

    def close(self) -> None:
        """Release everything the backend holds; idempotent."""
        ...
