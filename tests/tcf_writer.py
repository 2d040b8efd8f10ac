"""A synthetic Tomocube TCF writer: builds a TCF file time point by time point.

The files are synthetic, laid out per the public TCFile project's ``docs/structure_TCF.md``
(github.com/ehgus/TCFile): root attributes, ``/Data/3D`` (ZYX RI volumes) and ``/Data/2DMIP``
(YX maximum projections), with DataCount, SizeX/Y/Z, ResolutionX/Y/Z, RIMin/RIMax and
TimeInterval on each group, one dataset per time point (``000000``, ...) with its Time,
RecordingTime and PositionX/Y/Z/C attributes, all attributes one-element arrays. Volumes are
stored as the format stores them: uint16 RI x 1e4 (FormatVersion 1.4), or float32 RI
(``stored="float32"``, FormatVersion 1.2). Each time point is added the way a non-SWMR writer
grows the file: reopen in append mode, write the volume slice by slice (one chunk per
z-slice), then its MIP and attributes, bump DataCount, close.

``synthetic_ri(t)`` is deterministic, so a test (or a reader of a file this script wrote)
can check every frame. As a script, for end-to-end tests::

    python tests/tcf_writer.py DST.TCF --frames N --pause S [--shape Z Y X] [--float32]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Literal

import h5py  # type: ignore[import-untyped]
import numpy as np

SHAPE = (8, 32, 32)  # Z, Y, X
RESOLUTION_UM = (0.6, 0.16, 0.16)  # Z, Y, X
MEDIUM_RI = 1.337


def synthetic_ri(t: int, shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    """The float32 RI volume of time point ``t``: medium plus two cells that move with t."""
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    ri = np.full(shape, MEDIUM_RI, dtype=np.float32)
    nz, ny, nx = shape
    for k, peak in enumerate((1.385, 1.372)):
        cy = ny * (0.3 + 0.4 * k) + (t % 5)
        cx = nx * (0.35 + 0.3 * k) + (3 * t) % 7
        r2 = ((z - nz / 2) / (0.4 * nz)) ** 2 + ((y - cy) / 6.0) ** 2 + ((x - cx) / 7.0) ** 2
        ri = np.maximum(ri, np.where(r2 < 1.0, MEDIUM_RI + (peak - MEDIUM_RI) * (1 - r2), 0))
    ri[nz // 2, 0, 0] = MEDIUM_RI + 0.001 * (t % 40)  # a marker that differs per time point
    return ri.astype(np.float32)


def stored(ri: np.ndarray, kind: Literal["uint16", "float32"]) -> np.ndarray:
    """RI as the TCF stores it: uint16 RI x 1e4 (FormatVersion >= 1.3) or float32 RI."""
    if kind == "float32":
        return ri.astype(np.float32)
    return np.rint(ri.astype(np.float64) * 1e4).astype(np.uint16)


def _one(value: float | int) -> np.ndarray:
    return np.array([value])


def create_tcf(
    path: Path,
    *,
    shape: tuple[int, int, int] = SHAPE,
    kind: Literal["uint16", "float32"] = "uint16",
    resolution_um: tuple[float, float, float] = RESOLUTION_UM,
    interval_s: float = 60.0,
    mip: bool = True,
) -> None:
    """A TCF with its root attributes and empty /Data/3D (and /Data/2DMIP) groups."""
    nz, ny, nx = shape
    rz, ry, rx = resolution_um
    with h5py.File(path, "w") as f:
        f.attrs["FormatVersion"] = "1.4.1" if kind == "uint16" else "1.2"
        f.attrs["CreateDate"] = "2026-01-01 12:00:00"
        f.attrs["Title"] = "livecell synthetic TCF"
        f.attrs["DeviceHost"] = "synthetic"
        f.attrs["DataID"] = path.stem
        groups = [("3D", 3)] + ([("2DMIP", 2)] if mip else [])
        for name, ndim in groups:
            group = f.create_group(f"Data/{name}")
            group.attrs["DataCount"] = _one(0)
            group.attrs["TimeInterval"] = _one(interval_s)
            group.attrs["RIMin"] = _one(MEDIUM_RI)
            group.attrs["RIMax"] = _one(1.40)
            group.attrs["SizeX"] = _one(nx)
            group.attrs["SizeY"] = _one(ny)
            group.attrs["ResolutionX"] = _one(rx)
            group.attrs["ResolutionY"] = _one(ry)
            if ndim == 3:
                group.attrs["SizeZ"] = _one(nz)
                group.attrs["ResolutionZ"] = _one(rz)


def add_time_point(
    path: Path,
    t: int,
    *,
    volume: np.ndarray | None = None,
    slices: int | None = None,
    mip: bool = True,
) -> None:
    """Reopen in append mode and write time point ``t``, then close.

    ``volume`` is the RI volume (default ``synthetic_ri(t)``; any shape, to make a damaged
    time point). ``slices``: write only the first ``slices`` z-slices not written yet and close,
    leaving a half-written time point on disk; a later call finishes it.
    """
    with h5py.File(path, "a") as f:
        group = f["Data/3D"]
        kind: Literal["uint16", "float32"] = (
            "float32" if str(f.attrs["FormatVersion"]) < "1.3" else "uint16"
        )
        nz, ny, nx = (int(group.attrs[f"Size{a}"][0]) for a in "ZYX")
        shape = (nz, ny, nx)
        ri = synthetic_ri(t, shape) if volume is None else volume
        data = stored(ri, kind)
        name = f"{t:06d}"
        if name not in group:
            chunks = (1, *data.shape[1:]) if data.ndim == 3 else None
            group.create_dataset(name, shape=data.shape, dtype=data.dtype, chunks=chunks)
        dataset = group[name]
        if dataset.chunks is None:  # a damaged (not ZYX) time point: written at once
            dataset[...] = data
        else:
            start = dataset.id.get_num_chunks()  # one chunk per z-slice, written in order
            stop = len(data) if slices is None else min(len(data), start + slices)
            for z in range(start, stop):
                dataset[z] = data[z]
            if stop < len(data):
                return
        now = time.time()
        attrs = {"PositionX": 0.0, "PositionY": 0.0, "PositionZ": 0.0, "PositionC": 0.0}
        attrs |= {"Time": t * float(group.attrs["TimeInterval"][0]), "RecordingTime": now}
        attrs |= {"RIMin": float(ri.min()), "RIMax": float(ri.max())}
        for key, value in attrs.items():
            dataset.attrs[key] = _one(value)
        targets = [group]
        if mip and "Data/2DMIP" in f and data.ndim == 3:
            mips = f["Data/2DMIP"]
            mips.create_dataset(name, data=data.max(axis=0))
            for key, value in attrs.items():
                mips[name].attrs[key] = _one(value)
            targets.append(mips)
        for target in targets:
            target.attrs["DataCount"] = _one(t + 1)


def write_tcf(
    path: Path,
    frames: int,
    *,
    pause_s: float = 0.0,
    kind: Literal["uint16", "float32"] = "uint16",
    shape: tuple[int, int, int] = SHAPE,
) -> None:
    """Create ``path`` and grow it by ``frames`` time points, ``pause_s`` apart."""
    create_tcf(path, shape=shape, kind=kind)
    for t in range(frames):
        if t:
            time.sleep(pause_s)
        add_time_point(path, t)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dst", type=Path, help="the .TCF file to write")
    parser.add_argument("--frames", type=int, default=5, help="time points to write")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between time points")
    parser.add_argument(
        "--shape", type=int, nargs=3, default=list(SHAPE), metavar=("Z", "Y", "X"), help="volume"
    )
    parser.add_argument("--float32", action="store_true", help="store float32 RI (v1.2)")
    args = parser.parse_args(argv)
    args.dst.parent.mkdir(parents=True, exist_ok=True)
    shape = (args.shape[0], args.shape[1], args.shape[2])
    write_tcf(
        args.dst,
        args.frames,
        pause_s=args.pause,
        kind="float32" if args.float32 else "uint16",
        shape=shape,
    )
    print(f"wrote {args.frames} time points to {args.dst}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
