"""Event kinds and how an event becomes a JSON object.

An ``Event`` is what an analysis stage or a source derives; ``emitted_at`` and
``latency_s`` are stamped by the pipeline when it is written. ``event_id`` is
a hash of what identifies the event (its kind, frame and discriminating
fields), so the same event derived again, after a crash or in ``replay``, has
the same id.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from livecell.frames import Frame, Rejection, usable_pixel_size_um

SCHEMA_VERSION: Final = 1

FRAME: Final = "frame"
REJECTED: Final = "rejected"
PATCH_STATES: Final = "patch_states"
CONTACT_START: Final = "contact_start"
CONTACT_END: Final = "contact_end"
CELL_TYPE: Final = "cell_type"
DEATH: Final = "death"
EARLY_NECROPTOSIS: Final = "early_necroptosis"
KINDS: Final = (
    FRAME,
    REJECTED,
    PATCH_STATES,
    CONTACT_START,
    CONTACT_END,
    CELL_TYPE,
    DEATH,
    EARLY_NECROPTOSIS,
)


@dataclass(frozen=True, slots=True)
class Event:
    """A derived event, before it is stamped and written."""

    event_id: str
    kind: str
    acquisition: str | None
    position: str | None
    t: int | None
    completed_at: float
    fields: dict[str, Any] = field(default_factory=dict)

    def to_record(self, emitted_at: float) -> dict[str, Any]:
        """The JSON object written to sinks (SPEC section 4)."""
        return {
            "event_id": self.event_id,
            "kind": self.kind,
            "v": SCHEMA_VERSION,
            "acquisition": self.acquisition,
            "position": self.position,
            "t": self.t,
            "emitted_at": round(emitted_at, 6),
            "latency_s": round(max(0.0, emitted_at - self.completed_at), 6),
            **self.fields,
        }


def stable_id(*parts: object) -> str:
    """A 128-bit hex id from the parts' canonical JSON: equal parts, equal id."""
    canonical = json.dumps(parts, separators=(",", ":"), sort_keys=True, default=str)
    return hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()


def frame_event(frame: Frame) -> Event:
    key = frame.key
    fields: dict[str, Any] = {
        "shape": list(frame.shape),
        "dtype": frame.dtype,
        "axes": frame.axes,
        "source": frame.source,
        "crc32": pixels_crc32(frame.pixels),
    }
    if frame.path is not None:
        fields["path"] = frame.path
    pixel_size_um = usable_pixel_size_um(frame.pixel_size_um)
    if pixel_size_um is not None:
        fields["pixel_size_um"] = pixel_size_um
    return Event(
        event_id=stable_id(FRAME, key.acquisition, key.position, key.t),
        kind=FRAME,
        acquisition=key.acquisition,
        position=key.position,
        t=key.t,
        completed_at=frame.completed_at,
        fields=fields,
    )


def pixels_crc32(pixels: np.ndarray) -> int:
    """CRC-32 of the pixels as C-ordered little-endian bytes (as sent over ZeroMQ): lets a
    user check which pixels were analysed against their own copy (about 2.5 GB/s)."""
    little = pixels.astype(pixels.dtype.newbyteorder("<"), order="C", copy=False)
    return zlib.crc32(np.ascontiguousarray(little).data.cast("B"))


def rejected_event(rejection: Rejection) -> Event:
    key = rejection.key
    fields: dict[str, Any] = {"reason": rejection.reason, "detail": rejection.detail}
    if rejection.path is not None:
        fields["path"] = rejection.path
    if rejection.header is not None:
        fields["header"] = rejection.header
    return Event(
        event_id=stable_id(REJECTED, rejection.reason, rejection.fingerprint),
        kind=REJECTED,
        acquisition=key.acquisition if key else None,
        position=key.position if key else None,
        t=key.t if key else None,
        completed_at=rejection.completed_at,
        fields=fields,
    )


def to_json_line(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
