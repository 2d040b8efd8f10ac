"""Frames out, the way acquisition software writes them, or on ZeroMQ.

Files: one OME-TIFF per position per time point at
``OUT/frames/<position>/t{t:05d}.ome.tif``, with OME-XML axes, pixel size,
channel names and a ``MapAnnotation`` (acquisition, position, t); the file is
created under its final name, written in pieces and closed, as a camera
driver streams it. ZeroMQ: a PUSH socket sending SPEC 3.2 two-part messages.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import tifffile
import zmq

from livecell.simulation.scene import SimFrame

_PIECES = 4


class FrameOutput(Protocol):
    def write(self, frame: SimFrame) -> None: ...

    def close(self) -> None: ...


def ome_tiff_bytes(frame: SimFrame, *, acquisition: str) -> bytes:
    """The OME-TIFF a microscope would write for ``frame``."""
    metadata: dict[str, Any] = {
        "axes": frame.axes,
        "PhysicalSizeX": frame.pixel_size_um,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": frame.pixel_size_um,
        "PhysicalSizeYUnit": "µm",
        "MapAnnotation": {
            "acquisition": acquisition,
            "position": frame.position,
            "t": str(frame.t),
        },
    }
    if frame.channels:
        metadata["Channel"] = {"Name": list(frame.channels)}
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, frame.image, ome=True, photometric="minisblack", metadata=metadata)
    return buffer.getvalue()


class FileOutput:
    def __init__(self, out: Path, *, acquisition: str, piece_pause_s: float = 0.0) -> None:
        self.folder = out / "frames"
        self._acquisition = acquisition
        self._pause_s = piece_pause_s

    def path_for(self, frame: SimFrame) -> Path:
        return self.folder / frame.position / f"t{frame.t:05d}.ome.tif"

    def write(self, frame: SimFrame) -> None:
        data = ome_tiff_bytes(frame, acquisition=self._acquisition)
        path = self.path_for(frame)
        path.parent.mkdir(parents=True, exist_ok=True)
        step = -(-len(data) // _PIECES)
        with open(path, "wb") as f:
            for start in range(0, len(data), step):
                if start and self._pause_s:
                    time.sleep(self._pause_s)
                f.write(data[start : start + step])
                f.flush()

    def close(self) -> None:
        """Nothing held open between frames."""


class ZmqOutput:
    """PUSH to a livecell ZMQ source (by default it binds; we connect)."""

    def __init__(self, endpoint: str, *, acquisition: str, bind: bool = False) -> None:
        self._context: zmq.Context[Any] = zmq.Context()
        self._socket = self._context.socket(zmq.PUSH)
        self._socket.setsockopt(zmq.SNDHWM, 16)
        if bind:
            self._socket.bind(endpoint)
        else:
            self._socket.connect(endpoint)
        self._acquisition = acquisition

    def write(self, frame: SimFrame) -> None:
        image = np.ascontiguousarray(frame.image)
        header = {
            "v": 1,
            "acquisition": self._acquisition,
            "position": frame.position,
            "t": frame.t,
            "dtype": str(image.dtype),
            "shape": list(image.shape),
            "axes": frame.axes,
            "timestamp": time.time(),
            "pixel_size_um": frame.pixel_size_um,
        }
        if frame.channels:
            header["channels"] = list(frame.channels)
        little = image.astype(image.dtype.newbyteorder("<"), copy=False)
        self._socket.send_multipart([json.dumps(header).encode(), little.data], copy=False)

    def close(self) -> None:
        self._socket.close(linger=10_000)
        self._context.term()


class Pacer:
    """Frame ``t`` is released at ``start + t * interval_s`` (0: as fast as possible)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._start = time.monotonic()

    def wait_for(self, t: int) -> None:
        if self.interval_s <= 0:
            return
        delay = self._start + t * self.interval_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
