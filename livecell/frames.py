"""The frame: one image (2D, or a Z and/or C stack) at one position and time index.

Every source produces ``Frame`` objects; everything downstream consumes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Axes = Literal["YX", "ZYX", "CYX", "ZCYX"]
SUPPORTED_AXES: tuple[str, ...] = ("YX", "ZYX", "CYX", "ZCYX")
SUPPORTED_DTYPES: tuple[str, ...] = ("uint8", "uint16", "float32")
SourceKind = Literal["watch", "zmq"]
MAX_T = 2**63 - 1  # the journal keys frames by t in a SQLite INTEGER


@dataclass(frozen=True, slots=True)
class FrameKey:
    """What makes a frame unique: a duplicate key is analysed once."""

    acquisition: str
    position: str
    t: int

    def __str__(self) -> str:
        return f"{self.acquisition}/{self.position}/t={self.t}"


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """An accepted frame and where it came from.

    ``completed_at`` is the Unix time the frame became complete (file closed,
    message received); event latencies are measured from it. ``header`` (ZeroMQ
    only) is the received header, echoed if the frame is rejected later (a duplicate).
    ``in_dataset``: ``path`` names one image inside a multi-frame file (``<file>#<image>``,
    see ``livecell.stream.dataset_follow``), so a duplicate is never moved to quarantine.
    """

    key: FrameKey
    pixels: np.ndarray
    axes: str
    source: SourceKind
    completed_at: float
    path: str | None = None
    pixel_size_um: float | None = None
    channels: tuple[str, ...] = field(default=())
    header: str | None = None
    in_dataset: bool = False

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.pixels.shape)

    @property
    def dtype(self) -> str:
        return str(self.pixels.dtype)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A frame or message that was refused, on its way to become a ``rejected`` event.

    ``path`` is set for files (they are quarantined once the event is durable);
    ``header`` for ZeroMQ messages. ``fingerprint`` makes the event id stable
    when the same bad input is seen again (after a restart, or re-sent).
    """

    reason: str
    detail: str
    completed_at: float
    fingerprint: str
    key: FrameKey | None = None
    path: str | None = None
    header: str | None = None
    quarantine: bool = True


def usable_pixel_size_um(value: object) -> float | None:
    """A pixel size from a file's metadata, if it is a finite positive number; None
    otherwise (``NaN``, ``Infinity`` and ``1e999`` parse as floats but mean nothing)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        size = float(value)
    except OverflowError:  # an integer past any float
        return None
    return size if math.isfinite(size) and size > 0 else None


def check_pixels(pixels: np.ndarray, axes: str) -> None:
    """Raise ``RejectedFrame`` unless ``pixels`` is a usable image with ``axes``."""
    from livecell.errors import RejectedFrame

    if pixels.ndim != len(axes):
        raise RejectedFrame(
            "axes_mismatch",
            f"image has {pixels.ndim} dimensions {tuple(pixels.shape)} but axes are {axes!r}",
        )
    if pixels.size == 0:
        raise RejectedFrame("empty_image", f"image has no pixels, shape {tuple(pixels.shape)}")
    if pixels.dtype.kind not in "uif":
        raise RejectedFrame(
            "bad_dtype",
            f"{pixels.dtype} pixels: livecell takes integer or real-valued images "
            "(for complex data, write its magnitude or phase)",
        )
    if pixels.dtype.kind == "f" and not np.isfinite(pixels).any():
        raise RejectedFrame("all_nan", "every pixel is NaN or infinite")
