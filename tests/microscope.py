"""A fake microscope for end-to-end tests: small TIFF files, SPEC 3.2 ZeroMQ messages,
and simulated nanowell acquisitions written by ``livecell simulate``.

Imported by tests as ``from microscope import ...`` (``tests/`` is on the path, as
for ``conftest``). Pixels are deterministic from (position, t), so a re-sent frame
is byte for byte the frame sent before.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import zmq

SHAPE = (16, 16)


def pixels_for(position: str, t: int, shape: Sequence[int] = SHAPE) -> np.ndarray:
    """A small uint16 image that differs per (position, t)."""
    seed = (sum(position.encode()) * 100_003 + t) % (2**32)
    return np.random.default_rng(seed).integers(0, 4096, size=tuple(shape), dtype=np.uint16)


def write_tiff(path: Path, pixels: np.ndarray) -> Path:
    """Write a plain (non-OME) TIFF in place, as a microscope does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, pixels)
    return path


def write_tiff_in_chunks(path: Path, pixels: np.ndarray, *, chunks: int, pause_s: float) -> Path:
    """Write a TIFF in ``chunks`` pieces ``pause_s`` apart, as a slow microscope does."""
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, pixels)
    data = buffer.getvalue()
    step = -(-len(data) // chunks)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for start in range(0, len(data), step):
            if start:
                time.sleep(pause_s)
            f.write(data[start : start + step])
            f.flush()
    return path


def frame_message(
    position: str,
    t: int,
    *,
    acquisition: str = "acq",
    shape: Sequence[int] = SHAPE,
    **header_fields: Any,
) -> list[bytes]:
    """A valid two-part message; ``header_fields`` override or add header keys."""
    pixels = pixels_for(position, t, shape)
    header: dict[str, Any] = {
        "v": 1,
        "acquisition": acquisition,
        "position": position,
        "t": t,
        "dtype": "uint16",
        "shape": list(pixels.shape),
        "axes": "YX",
        "timestamp": time.time(),
    }
    header.update(header_fields)
    return [json.dumps(header).encode(), pixels.astype("<u2").tobytes()]


class PushSender:
    """A PUSH socket connected to the daemon's PULL endpoint.

    ``close`` lingers so that queued messages reach the daemon, then terminates
    the context: without both, messages still queued at exit are dropped.
    """

    def __init__(self, endpoint: str) -> None:
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.PUSH)
        self._socket.connect(endpoint)

    def send(self, parts: Sequence[bytes]) -> None:
        self._socket.send_multipart(list(parts))

    def send_all(self, messages: Iterable[Sequence[bytes]]) -> None:
        for parts in messages:
            self.send(parts)

    def close(self, linger_ms: int = 10_000) -> None:
        self._socket.close(linger=linger_ms)
        self._context.term()

    def __enter__(self) -> PushSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PacedSender(threading.Thread):
    """Sends ``messages`` in order, ``interval_s`` apart, until done or ``halt`` is set.

    Used while the daemon may be killed at any moment: when halted it drops
    what it still had queued (linger 0), as a sender whose peer died would.
    """

    def __init__(
        self, endpoint: str, messages: Sequence[Sequence[bytes]], *, interval_s: float
    ) -> None:
        super().__init__(name="paced-sender", daemon=True)
        self._endpoint = endpoint
        self._messages = messages
        self._interval_s = interval_s
        self.halt = threading.Event()
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        sender = PushSender(self._endpoint)
        linger_ms = 10_000
        try:
            for parts in self._messages:
                if self.halt.is_set():
                    linger_ms = 0
                    break
                sender.send(parts)
                self.sent += 1
                if self._interval_s:
                    self.halt.wait(self._interval_s)
        except BaseException as exc:  # reported by the test thread
            self.error = exc
        finally:
            sender.close(linger_ms=0 if self.halt.is_set() else linger_ms)


class FileWriter(threading.Thread):
    """A microscope writing ``<folder>/Pos0/img_{t}.tif`` every ``pause_s`` until ``halt``."""

    def __init__(self, folder: Path, *, pause_s: float = 0.01, frames: int = 1000) -> None:
        super().__init__(daemon=True)
        self.folder, self.pause_s, self.frames = folder, pause_s, frames
        self.halt = threading.Event()

    def run(self) -> None:
        for t in range(self.frames):
            if self.halt.is_set():
                return
            write_tiff(self.folder / "Pos0" / f"img_{t:05d}.tif", pixels_for("Pos0", t))
            time.sleep(self.pause_s)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=15)


# Many deaths in a few frames, so that every label occurs in a tiny acquisition.
DEATHY_PARAMS = "spontaneous_death_per_h = 1.5\nkill_rate_per_contact_h = 4.0\n"


def simulate_deathy(root: Path, *, seed: int, positions: int = 1) -> Path:
    """``root/acq``: a tiny nanowell acquisition, many deaths (512 px, 2 x 2 wells, 8 frames)."""
    params = root / "deathy.toml"
    params.write_text(DEATHY_PARAMS)
    return simulate_nanowell(
        root / "acq", seed=seed, frames=8, size_px=512, wells=2, positions=positions, params=params
    )


def simulate_nanowell(
    out: Path,
    *,
    seed: int,
    frames: int,
    size_px: int | None = None,
    wells: int | None = None,
    positions: int | None = None,
    params: Path | None = None,
) -> Path:
    """``livecell simulate OUT --kind nanowell`` as a user runs it; return ``out``."""
    args = ["--frames", str(frames), "--interval", "0", "--seed", str(seed)]
    options = (("--size", size_px), ("--wells", wells), ("--positions", positions))
    for option, value in (*options, ("--params", params)):
        if value is not None:
            args += [option, str(value)]
    command = [sys.executable, "-m", "livecell", "simulate", str(out), "--kind", "nanowell"]
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out
