"""Grow a Micro-Manager-style OME-TIFF stack page by page, as a live acquisition does.

Importable by tests (``from mmstack_writer import StackPlan, write_stack``) and runnable as a
script for end-to-end and SIGKILL tests::

    python tests/mmstack_writer.py DST --frames N --pages-per-file K --pause S
        [--channels DAPI,GFP] [--slices Z] [--position Pos0] [--prefix acq]
        [--size H W] [--bigtiff] [--order tifffile|append] [--no-ome] [--no-mm-metadata]
        [--damage I,J] [--piece BYTES] [--presize BYTES]

It writes ``DST/<prefix>_MMStack_<position>.ome.tif`` (then ``..._1.ome.tif``, ``_2`` ... every
K pages, like Micro-Manager's split at 4 GB), prints that first path on stdout at once, and
``done`` when the OME-XML has been written.

What it writes (so a test can check pixels without reading the files):

- pages in Micro-Manager's order: for each time point, for each z, each channel (channel
  fastest; the OME ``DimensionOrder`` is ``XYCZT``); page ``g`` (counted across all files) is
  ``page_pixels(g, shape)``: uint16, ``pixel[y, x] = (g * 1009 + (y * W + x) * 7) % 65536``;
- each page carries Micro-Manager's per-image JSON in tag 51123 (``ChannelIndex``,
  ``SliceIndex``, ``FrameIndex``, ``PositionIndex``, ``Channel``, ``PositionName``,
  ``PixelSizeUm``) unless ``mm_metadata`` is off; pages in ``damaged`` get broken JSON;
- every file's first page has an empty ImageDescription; when the acquisition ends the
  OME-XML is written into the first file's one with ``tifffile.tiffcomment`` (the value is
  appended at the end of the file and the tag re-pointed). Micro-Manager does the same at
  ``close()``: its first IFD carries an ImageDescription of count 0 that it re-points at the
  OME-XML appended to the file.

Each page is written by tifffile's ``TiffWriter`` into ``PieceFile``, which sends every write
to disk in pieces of ``piece`` bytes and calls ``on_piece`` between them, so a reader polled
there sees partial pages. ``order="tifffile"`` keeps tifffile's own order (the previous
page's next-IFD link first, then the pixels, then the IFD into the gap left for it);
``order="append"`` writes each page's bytes in file order (IFD and tag values before the
pixels, the file only ever growing at its end), as Micro-Manager does.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import tifffile

MM_TAG = 51123


@dataclass(frozen=True)
class StackPlan:
    """What the simulated acquisition writes."""

    frames: int = 3
    channels: tuple[str, ...] = ("DAPI",)
    slices: int = 1
    position: str = "Pos0"
    prefix: str = "acq"
    shape: tuple[int, int] = (12, 20)
    pages_per_file: int = 0  # 0: one file
    bigtiff: bool = False
    pixel_size_um: float = 0.325
    mm_metadata: bool = True
    rows_per_strip: int | None = None  # None: one strip per page, as Micro-Manager writes
    damaged: frozenset[int] = field(default_factory=frozenset)

    @property
    def n_pages(self) -> int:
        return self.frames * self.slices * len(self.channels)


def page_coords(plan: StackPlan) -> list[tuple[int, int, int]]:
    """(t, z, c) of each page, in write order."""
    return [
        (t, z, c)
        for t in range(plan.frames)
        for z in range(plan.slices)
        for c in range(len(plan.channels))
    ]


def page_pixels(index: int, shape: tuple[int, int]) -> np.ndarray:
    """The pixels of page ``index`` (counted across all files of the stack)."""
    h, w = shape
    flat = (index * 1009 + np.arange(h * w, dtype=np.int64) * 7) % 65536
    return flat.astype(np.uint16).reshape(h, w)


def file_name(plan: StackPlan, split: int) -> str:
    """``acq_MMStack_Pos0.ome.tif``, then ``acq_MMStack_Pos0_1.ome.tif`` ..."""
    suffix = f"_{split}" if split else ""
    return f"{plan.prefix}_MMStack_{plan.position}{suffix}.ome.tif"


def mm_json(plan: StackPlan, index: int) -> str:
    t, z, c = page_coords(plan)[index]
    if index in plan.damaged:
        return f'{{"FrameIndex": {t}, "Channel'  # cut off: not JSON
    meta = {
        "ChannelIndex": c,
        "SliceIndex": z,
        "FrameIndex": t,
        "PositionIndex": 0,
        "Channel": plan.channels[c],
        "PositionName": plan.position,
        "PixelSizeUm": plan.pixel_size_um,
        "Width": plan.shape[1],
        "Height": plan.shape[0],
        "PixelType": "GRAY16",
    }
    return json.dumps(meta)


def ome_xml(plan: StackPlan, files: list[str]) -> str:
    """Micro-Manager-style OME-XML: one Image, channels, a TiffData per plane."""
    per_file = plan.pages_per_file or plan.n_pages
    uuids = [f"urn:uuid:{uuid.uuid4()}" for _ in files]
    h, w = plan.shape
    channels = "".join(
        f'<Channel ID="Channel:0:{i}" Name="{name}" SamplesPerPixel="1"/>'
        for i, name in enumerate(plan.channels)
    )
    tiffdata = "".join(
        f'<TiffData FirstC="{c}" FirstZ="{z}" FirstT="{t}" IFD="{g % per_file}" PlaneCount="1">'
        f'<UUID FileName="{files[g // per_file]}">{uuids[g // per_file]}</UUID></TiffData>'
        for g, (t, z, c) in enumerate(page_coords(plan))
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
        f'UUID="{uuids[0]}">'
        f'<Image ID="Image:0" Name="{plan.position}">'
        f'<Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" BigEndian="false" '
        f'SizeX="{w}" SizeY="{h}" SizeC="{len(plan.channels)}" SizeZ="{plan.slices}" '
        f'SizeT="{plan.frames}" PhysicalSizeX="{plan.pixel_size_um}" '
        f'PhysicalSizeY="{plan.pixel_size_um}">{channels}{tiffdata}</Pixels></Image></OME>'
    )


class PieceFile(io.RawIOBase):
    """A seekable file whose writes reach the disk in pieces, ``on_piece()`` between them.

    With ``order="append"`` the writes of one page are held until ``commit()`` and then
    written in file order, so the file only grows at its end.
    """

    def __init__(
        self,
        path: Path,
        *,
        piece: int,
        on_piece: Callable[[], None],
        order: str = "tifffile",
        presize: int = 0,
    ) -> None:
        super().__init__()
        if order not in {"tifffile", "append"}:
            raise ValueError(f"order must be 'tifffile' or 'append', not {order!r}")
        self._fh = open(path, "w+b", buffering=0)  # noqa: SIM115 - closed in close()
        if presize:  # zeros ahead, as Micro-Manager sizes its files; cut back on close
            self._fh.truncate(presize)
        self._presize = presize
        self._piece = max(1, piece)
        self._on_piece = on_piece
        self._order = order
        self._pos = 0
        self._size = 0
        self._held: list[tuple[int, bytes]] = []
        self.name = str(path)

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def fileno(self) -> int:
        raise io.UnsupportedOperation("PieceFile has no file descriptor")

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def write(self, data: Any) -> int:
        data = bytes(data)
        if self._order == "append":
            self._held.append((self._pos, data))
        else:
            self._write_pieces(self._pos, data)
        self._pos += len(data)
        self._size = max(self._size, self._pos)
        return len(data)

    def commit(self) -> None:
        """Write what ``append`` order held back, in file order."""
        held, self._held = sorted(self._held, key=lambda item: item[0]), []
        for offset, data in held:
            self._write_pieces(offset, data)

    def _write_pieces(self, offset: int, data: bytes) -> None:
        for start in range(0, len(data), self._piece):
            self._fh.seek(offset + start)
            self._fh.write(data[start : start + self._piece])
            self._on_piece()

    def close(self) -> None:
        if not self.closed:
            self.commit()
            if self._presize:
                self._fh.truncate(self._size)
            self._fh.close()
        super().close()


def _pages_by_file(plan: StackPlan) -> Iterator[tuple[int, list[int]]]:
    per_file = plan.pages_per_file or plan.n_pages
    for split, start in enumerate(range(0, plan.n_pages, per_file)):
        yield split, list(range(start, min(start + per_file, plan.n_pages)))


def write_stack(
    dst: Path,
    plan: StackPlan,
    *,
    piece: int = 64,
    on_piece: Callable[[], None] = lambda: None,
    pause: float = 0.0,
    order: str = "tifffile",
    write_ome: bool = True,
    on_start: Callable[[Path], None] = lambda path: None,
    presize: int = 0,
) -> list[Path]:
    """Write the stack into ``dst`` page by page; return its files, first to last.

    ``presize`` > 0 sizes each file ahead with zeros (as Micro-Manager does) and cuts it
    back when the file is done, so the file size no longer tells what has been written.
    """
    dst.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for split, pages in _pages_by_file(plan):
        path = dst / file_name(plan, split)
        paths.append(path)
        with (
            PieceFile(path, piece=piece, on_piece=on_piece, order=order, presize=presize) as fh,
            tifffile.TiffWriter(
                cast(IO[bytes], fh), bigtiff=plan.bigtiff, byteorder="<", ome=False
            ) as tw,
        ):
            if split == 0:
                on_start(path)
            for n, index in enumerate(pages):
                extratags = []
                if plan.mm_metadata:
                    extratags.append((MM_TAG, "s", 0, mm_json(plan, index), True))
                tw.write(
                    page_pixels(index, plan.shape),
                    contiguous=False,
                    description="" if n == 0 else None,
                    metadata=None,
                    software=False,
                    photometric="minisblack",
                    rowsperstrip=plan.rows_per_strip,
                    extratags=extratags,
                )
                fh.commit()
                if pause:
                    time.sleep(pause)
    if write_ome:
        tifffile.tiffcomment(paths[0], ome_xml(plan, [p.name for p in paths]))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dst", type=Path, help="folder to write the stack into")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--pages-per-file", type=int, default=0, help="split every K pages")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between pages")
    parser.add_argument("--channels", default="DAPI", help="comma-separated channel names")
    parser.add_argument("--slices", type=int, default=1)
    parser.add_argument("--position", default="Pos0")
    parser.add_argument("--prefix", default="acq")
    parser.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"))
    parser.add_argument("--bigtiff", action="store_true")
    parser.add_argument("--order", choices=("tifffile", "append"), default="tifffile")
    parser.add_argument("--no-ome", action="store_true", help="never write the OME-XML")
    parser.add_argument("--no-mm-metadata", action="store_true")
    parser.add_argument("--damage", default="", help="comma-separated page indices")
    parser.add_argument("--piece", type=int, default=4096, help="bytes per write piece")
    parser.add_argument("--presize", type=int, default=0, help="size each file ahead (zeros)")
    args = parser.parse_args(argv)
    plan = StackPlan(
        frames=args.frames,
        channels=tuple(args.channels.split(",")),
        slices=args.slices,
        position=args.position,
        prefix=args.prefix,
        shape=(args.size[0], args.size[1]),
        pages_per_file=args.pages_per_file,
        bigtiff=args.bigtiff,
        mm_metadata=not args.no_mm_metadata,
        damaged=frozenset(int(i) for i in args.damage.split(",") if i),
    )
    piece_pause = args.pause / 20

    def on_start(path: Path) -> None:
        print(path, flush=True)

    write_stack(
        args.dst,
        plan,
        piece=args.piece,
        on_piece=(lambda: time.sleep(piece_pause)) if piece_pause else (lambda: None),
        pause=args.pause,
        order=args.order,
        write_ome=not args.no_ome,
        on_start=on_start,
        presize=args.presize,
    )
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
