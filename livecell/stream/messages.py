"""ZeroMQ frame messages (SPEC 3.2): validated before anything is allocated.

A message is exactly two parts: a UTF-8 JSON header and the raw pixel buffer
(C order, little-endian). The header is checked field by field and the pixel
count is computed in Python integers and compared with the buffer length and
the configured maximum *before* numpy sees the buffer, so a header declaring
100000 x 100000 pixels costs nothing. The pixels are then a zero-copy view of
the message buffer. Nothing is ever unpickled or evaluated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, TypeGuard

import numpy as np

from livecell.errors import RejectedFrame
from livecell.events import stable_id
from livecell.frames import (
    MAX_T,
    SUPPORTED_AXES,
    SUPPORTED_DTYPES,
    Frame,
    FrameKey,
    Rejection,
    check_pixels,
)

MAX_HEADER_BYTES = 64 * 1024
HEADER_ECHO_CHARS = 1000
_REQUIRED = ("v", "acquisition", "position", "t", "dtype", "shape", "axes", "timestamp")


def parse_message(
    parts: Sequence[memoryview | bytes], *, received_at: float, max_frame_bytes: int
) -> Frame | Rejection:
    """Turn a received multipart message into a ``Frame`` or a ``Rejection`` (with the
    frame's acquisition, position and t where its header was readable)."""
    key: FrameKey | None = None
    try:
        if len(parts) != 2:
            raise RejectedFrame(
                "bad_frame_count", f"expected 2 message frames (header, pixels), got {len(parts)}"
            )
        header = parse_header(parts[0])
        key = header_key(header)
        return _frame(header, key, parts, received_at=received_at, max_frame_bytes=max_frame_bytes)
    except RejectedFrame as problem:
        lengths = [len(p) for p in parts]
        return Rejection(
            reason=problem.reason,
            detail=problem.detail,
            completed_at=received_at,
            fingerprint=stable_id(
                bytes(parts[0][:MAX_HEADER_BYTES]).hex() if parts else "", lengths
            ),
            key=key or (_readable_key(parts[0]) if parts else None),
            header=_echo(parts[0]) if parts else "",
            quarantine=False,
        )


def header_key(header: dict[str, Any]) -> FrameKey:
    """The frame a header names; ``RejectedFrame`` if its acquisition, position or t is
    missing or malformed."""
    acquisition, position, t = header.get("acquisition"), header.get("position"), header.get("t")
    if not _is_text(acquisition) or not acquisition:
        raise RejectedFrame("bad_field", "acquisition must be a non-empty UTF-8 string")
    if not _is_text(position) or not position:
        raise RejectedFrame("bad_field", "position must be a non-empty UTF-8 string")
    if not _is_int(t) or not 0 <= t <= MAX_T:
        raise RejectedFrame("bad_field", f"t must be an integer in [0, 2**63), got {t!r}")
    return FrameKey(acquisition, position, t)


def _readable_key(raw: memoryview | bytes) -> FrameKey | None:
    """The frame a rejected header names, where its acquisition, position and t are
    themselves well formed (another field made it fail), else None."""
    try:
        header = json.loads(bytes(raw[:MAX_HEADER_BYTES]).decode("utf-8"))
        return header_key(header) if isinstance(header, dict) else None
    except (UnicodeDecodeError, ValueError, RecursionError, RejectedFrame):
        return None


def _echo(raw: memoryview | bytes) -> str:
    """The start of a header, as text, for a ``rejected`` event."""
    return bytes(raw[:HEADER_ECHO_CHARS]).decode("utf-8", errors="replace")


def _frame(
    header: dict[str, Any],
    key: FrameKey,
    parts: Sequence[memoryview | bytes],
    *,
    received_at: float,
    max_frame_bytes: int,
) -> Frame:
    dtype = np.dtype(header["dtype"]).newbyteorder("<")
    shape: list[int] = header["shape"]
    expected = math.prod(shape) * dtype.itemsize
    if expected > max_frame_bytes:
        raise RejectedFrame(
            "shape_too_large",
            f"shape {shape} of {header['dtype']} is {expected} bytes, over the "
            f"{max_frame_bytes} byte limit (source.max_frame_mib)",
        )
    buffer = parts[1]
    if len(buffer) != expected:
        raise RejectedFrame(
            "buffer_size_mismatch",
            f"shape {shape} of {header['dtype']} needs {expected} bytes, "
            f"the buffer has {len(buffer)}",
        )
    pixels = np.frombuffer(buffer, dtype=dtype).reshape(shape)
    check_pixels(pixels, header["axes"])
    channels = header.get("channels")
    return Frame(
        key=key,
        pixels=pixels,
        axes=header["axes"],
        source="zmq",
        completed_at=received_at,
        pixel_size_um=header.get("pixel_size_um"),
        channels=tuple(channels) if channels else (),
        header=_echo(parts[0]),
    )


def parse_header(raw: memoryview | bytes) -> dict[str, Any]:
    """Validate a header; raise ``RejectedFrame`` naming the first field that is wrong."""
    if len(raw) > MAX_HEADER_BYTES:
        raise RejectedFrame("bad_header", f"header is {len(raw)} bytes, over {MAX_HEADER_BYTES}")
    try:
        header = json.loads(bytes(raw).decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RejectedFrame("bad_json", f"header is not UTF-8 JSON: {exc}") from None
    if not isinstance(header, dict):
        raise RejectedFrame(
            "bad_header", f"header is a JSON {type(header).__name__}, not an object"
        )
    missing = [f for f in _REQUIRED if f not in header]
    if missing:
        raise RejectedFrame("missing_field", f"header lacks {', '.join(missing)}")
    if header["v"] != 1 or isinstance(header["v"], bool):
        raise RejectedFrame("bad_version", f"header v is {header['v']!r}; this livecell reads v 1")
    header_key(header)
    if header["dtype"] not in SUPPORTED_DTYPES:
        raise RejectedFrame(
            "bad_dtype", f"dtype {header['dtype']!r} is not one of {', '.join(SUPPORTED_DTYPES)}"
        )
    shape = header["shape"]
    if not isinstance(shape, list) or not all(_is_int(n) and n > 0 for n in shape):
        raise RejectedFrame(
            "bad_shape", f"shape must be a list of positive integers, got {shape!r}"
        )
    axes = header["axes"]
    if axes not in SUPPORTED_AXES:
        raise RejectedFrame("bad_axes", f"axes {axes!r} is not one of {', '.join(SUPPORTED_AXES)}")
    if len(shape) != len(axes):
        raise RejectedFrame("bad_shape", f"shape {shape} does not have the {len(axes)} axes {axes}")
    if not _is_finite(header["timestamp"]):
        raise RejectedFrame("bad_field", "timestamp must be a finite number (Unix seconds)")
    pixel_size = header.get("pixel_size_um")
    if pixel_size is not None and (not _is_finite(pixel_size) or pixel_size <= 0):
        raise RejectedFrame("bad_field", "pixel_size_um must be a positive finite number")
    channels = header.get("channels")
    if channels is not None and (
        not isinstance(channels, list) or not all(_is_text(c) for c in channels)
    ):
        raise RejectedFrame("bad_field", "channels must be a list of strings")
    return header


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite(value: object) -> bool:
    """A JSON number that is not inf (``1e999`` parses as inf); ints are always finite."""
    if isinstance(value, float):
        return math.isfinite(value)
    return _is_int(value)


def _is_text(value: object) -> TypeGuard[str]:
    """A str that can be written as UTF-8 (JSON's ``"\\ud800"`` decodes to one that cannot)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _reject_constant(name: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity`` are not JSON (RFC 8259)."""
    raise ValueError(f"{name} is not a JSON value")
