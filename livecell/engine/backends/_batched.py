"""The batching and validation every backend shares.

A backend subclasses :class:`BatchedBackend` and implements ``_run_into(batch, out)``,
which fills ``out`` (float32 ``[n, K]``, a C-contiguous view of the final result) with
the probabilities for ``batch`` (float32 C-contiguous ``[n, C, H, W]``, ``n <= max_batch``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

import numpy as np

DEFAULT_MAX_BATCH = 64


class BatchedBackend(ABC):
    name: str = ""
    model_name: str = ""
    device: str = ""
    max_batch: int = DEFAULT_MAX_BATCH
    #: ``(C, H, W)`` the model takes; ``None`` in a place means any.
    input_shape: tuple[int | None, int | None, int | None] = (None, None, None)
    num_classes: int = 0

    def __init__(self, *, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.max_batch = max_batch
        self._closed = False

    def predict(self, patches: np.ndarray) -> np.ndarray:
        self._check_open()
        patches = self._validated(patches)
        out = np.empty((patches.shape[0], self.num_classes), dtype=np.float32)
        for start in range(0, patches.shape[0], self.max_batch):
            stop = min(start + self.max_batch, patches.shape[0])
            self._run_into(np.ascontiguousarray(patches[start:stop]), out[start:stop])
        return out

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.name} backend for {self.model_name!r} is closed")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} model={self.model_name!r} device={self.device!r} "
            f"max_batch={self.max_batch}>"
        )

    @abstractmethod
    def _run_into(self, batch: np.ndarray, out: np.ndarray) -> None:
        """Fill ``out`` with the probabilities for ``batch``."""

    def _release(self) -> None:  # noqa: B027 (optional hook; most backends need it)
        """Free what the backend holds (called once by ``close``)."""

    def _validated(self, patches: np.ndarray) -> np.ndarray:
        patches = np.asarray(patches)
        if patches.ndim != 4:
            raise ValueError(f"patches must be [N, C, H, W], got shape {patches.shape}")
        if not np.issubdtype(patches.dtype, np.floating):
            raise TypeError(f"patches must be floating point (float32), got {patches.dtype}")
        for axis, (want, got) in enumerate(zip(self.input_shape, patches.shape[1:], strict=True)):
            if want is not None and want != got:
                raise ValueError(
                    f"patches shape {patches.shape}: model {self.model_name!r} takes "
                    f"[N, {', '.join(str(s) for s in self.input_shape)}] (axis {axis + 1})"
                )
        return patches.astype(np.float32, copy=False)


def static_dim(value: object) -> int | None:
    """A positive int dimension, or ``None`` for a symbolic/dynamic one."""
    return value if isinstance(value, int) and value > 0 else None
