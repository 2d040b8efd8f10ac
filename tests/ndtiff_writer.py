"""Re-write a finished NDTiff dataset the way a live acquisition writes it.

For each index entry in order: the stack file grows up to the end of that entry's
pixels, then the entry's bytes are appended to ``NDTiff.index``, both in small
random chunks so a reader polling in between sees half-written pixels and
half-written entries. The image's metadata lands with the next image's bytes, as
with an appending writer. While growing, the last image of each stack file points
at a next IFD (as a live writer leaves it); finishing writes the null next-IFD
offset, the trailing bytes and the other files (display settings, pyramid levels),
which is how Micro-Manager ends a dataset.

``java_style=True`` mimics Micro-Manager's Java writer instead: the index and stack
files are preallocated with zeros, written in place, and truncated at the end.

Imported by tests (``from ndtiff_writer import LiveNDTiff``) and run as a script:

    python tests/ndtiff_writer.py SRC DST [--pause S] [--seed N] [--java-style]

grows DST from the finished dataset SRC with S seconds between entries, then finishes it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import struct
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, replace
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np

INDEX = "NDTiff.index"
FULL_RESOLUTION = "Full resolution"
_BYTES_PER_PIXEL = {0: 1, 1: 2, 2: 3, 3: 2, 4: 2, 5: 2, 6: 2}


@dataclass(frozen=True)
class RawEntry:
    """One entry of a finished dataset's index, with where its image lies."""

    number: int
    raw: bytes
    axes: dict[str, Any]
    filename: str
    pixel_offset: int
    pixel_end: int
    metadata_end: int


def index_folder(dataset: Path) -> Path:
    """The folder holding NDTiff.index: the dataset itself (v3) or its 'Full resolution'."""
    return dataset if (dataset / INDEX).exists() else dataset / FULL_RESOLUTION


def read_entries(dataset: Path) -> list[RawEntry]:
    data = (index_folder(dataset) / INDEX).read_bytes()
    entries: list[RawEntry] = []
    pos = 0
    while pos < len(data):
        start = pos
        (k,) = struct.unpack_from("<I", data, pos)
        axes = json.loads(data[pos + 4 : pos + 4 + k])
        pos += 4 + k
        (n,) = struct.unpack_from("<I", data, pos)
        filename = data[pos + 4 : pos + 4 + n].decode()
        pos += 4 + n
        pix, width, height, ptype, _, md_off, md_len, _ = struct.unpack_from("<8I", data, pos)
        pos += 32
        entries.append(
            RawEntry(
                number=len(entries),
                raw=data[start:pos],
                axes=axes,
                filename=filename,
                pixel_offset=pix,
                pixel_end=pix + width * height * _BYTES_PER_PIXEL.get(ptype, 2),
                metadata_end=md_off + md_len,
            )
        )
    return entries


def pack_entry(axes_json: bytes, filename: str, values: tuple[int, ...]) -> bytes:
    """An index entry from its parts (``values``: the eight u32 fields)."""
    name = filename.encode()
    return (
        struct.pack("<I", len(axes_json))
        + axes_json
        + struct.pack("<I", len(name))
        + name
        + struct.pack("<8I", *values)
    )


def corrupt(entry: RawEntry, how: str) -> RawEntry:
    """The entry with bad JSON, an unknown pixel type or a pixel offset far past the file."""
    k = struct.unpack_from("<I", entry.raw, 0)[0]
    axes_json = entry.raw[4 : 4 + k]
    fixed = list(struct.unpack_from("<8I", entry.raw, len(entry.raw) - 32))
    if how == "json":
        axes_json = b"{" + b"x" * (len(axes_json) - 1)
    elif how == "pixel-type":
        fixed[3] = 9
    elif how == "offset":
        fixed[0] = 0xFFFF0000
    else:
        raise ValueError(f"unknown corruption {how!r}")
    return replace(entry, raw=pack_entry(axes_json, entry.filename, tuple(fixed)))


class LiveNDTiff:
    """Grows ``dst`` from the finished dataset ``src``; ``steps()`` yields after each write."""

    def __init__(
        self,
        src: Path,
        dst: Path,
        *,
        rng: random.Random,
        entries: list[RawEntry] | None = None,
        index_chunk: int = 16,
        stack_chunk: int = 8192,
        java_style: bool = False,
        pause_s: float = 0.0,
    ) -> None:
        self.src = Path(src)
        self.dst = Path(dst)
        self.rng = rng
        self.entries = read_entries(self.src) if entries is None else entries
        self.index_chunk = index_chunk
        self.stack_chunk = stack_chunk
        self.java_style = java_style
        self.pause_s = pause_s
        self.src_dir = index_folder(self.src)
        self.dst_dir = self.dst / self.src_dir.relative_to(self.src)
        self.finished = False
        self._stacks: dict[str, bytes] = {}  # the live image of each stack file
        self._terminators: dict[str, int] = {}  # where each file's null next-IFD goes
        for name in {e.filename for e in self.entries}:
            data = bytearray((self.src_dir / name).read_bytes())
            last = max(
                (e for e in self.entries if e.filename == name), key=lambda e: e.pixel_offset
            )
            at = last.pixel_offset - 20 - (6 if _is_rgb(last) else 0)
            end = last.metadata_end + last.metadata_end % 2
            struct.pack_into("<I", data, at, end)  # live: points at the next IFD
            self._stacks[name] = bytes(data)
            self._terminators[name] = at
        self._written: dict[str, int] = {}
        self._index_pos = 0

    def steps(self) -> Iterator[tuple[str, int]]:
        """Write everything; yield (what, entry number) after each write, ('entry', n) per entry."""
        self.dst_dir.mkdir(parents=True, exist_ok=True)
        index_path = self.dst_dir / INDEX
        files: dict[str, int] = {}
        index_fd = os.open(index_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if self.java_style:
                total = sum(len(e.raw) for e in self.entries)
                os.ftruncate(index_fd, total + (1 << 20))
            previous: str | None = None
            for entry in self.entries:
                if previous is not None and entry.filename != previous:
                    yield from self._finish_file(files, previous)
                if entry.filename not in files:
                    files[entry.filename] = self._open_stack(entry.filename)
                previous = entry.filename
                yield from self._grow_stack(files, entry.filename, entry.pixel_end, entry.number)
                pos = 0
                while pos < len(entry.raw):
                    n = self.rng.randint(1, self.index_chunk)
                    os.pwrite(index_fd, entry.raw[pos : pos + n], self._index_pos + pos)
                    pos += n
                    yield ("index", entry.number)
                self._index_pos += len(entry.raw)
                yield ("entry", entry.number)
                if self.pause_s:
                    time.sleep(self.pause_s)
            if previous is not None:
                yield from self._finish_file(files, previous)
            if self.java_style:
                os.ftruncate(index_fd, self._index_pos)
        finally:
            os.close(index_fd)
            for fd in files.values():
                os.close(fd)
        self._copy_rest()
        self.finished = True
        yield ("finished", len(self.entries))

    def run(self) -> None:
        for _ in self.steps():
            pass

    def _open_stack(self, name: str) -> int:
        fd = os.open(self.dst_dir / name, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        if self.java_style:
            os.ftruncate(fd, len(self._stacks[name]) + (1 << 20))  # sparse preallocation
        self._written[name] = 0
        return fd

    def _grow_stack(
        self, files: dict[str, int], name: str, end: int, number: int
    ) -> Iterator[tuple[str, int]]:
        data = self._stacks[name]
        while self._written[name] < end:
            start = self._written[name]
            stop = min(end, start + self.rng.randint(1, self.stack_chunk))
            os.pwrite(files[name], data[start:stop], start)
            self._written[name] = stop
            yield ("stack", number)

    def _finish_file(self, files: dict[str, int], name: str) -> Iterator[tuple[str, int]]:
        yield from self._grow_stack(files, name, len(self._stacks[name]), -1)
        os.pwrite(files[name], b"\0\0\0\0", self._terminators[name])
        if self.java_style:
            os.ftruncate(files[name], len(self._stacks[name]))
        yield ("stack", -1)

    def _copy_rest(self) -> None:
        for src in self.src.rglob("*"):
            dst = self.dst / src.relative_to(self.src)
            if src.is_dir():
                dst.mkdir(parents=True, exist_ok=True)
            elif not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)


def _is_rgb(entry: RawEntry) -> bool:
    pixel_type: int = struct.unpack_from("<8I", entry.raw, len(entry.raw) - 32)[3]
    return pixel_type == 2


def grow(
    src: Path,
    dst: Path,
    *,
    seed: int = 0,
    on_step: Callable[[str, int], None] | None = None,
    **options: Any,
) -> None:
    """Grow ``dst`` from ``src`` in one go, calling ``on_step`` after every write."""
    for what, number in LiveNDTiff(src, dst, rng=random.Random(seed), **options).steps():
        if on_step is not None:
            on_step(what, number)


@contextmanager
def reference(dataset: Path) -> Iterator[Callable[[dict[str, Any]], np.ndarray]]:
    """Micro-Manager's own reader (ndstorage) on a finished dataset: ``read(axes)``."""
    import ndstorage  # type: ignore[import-untyped]

    with redirect_stdout(StringIO()):  # ndstorage prints its progress
        ds = ndstorage.Dataset(str(dataset))
    try:
        yield lambda axes: np.asarray(ds.read_image(**axes))
    finally:
        levels = getattr(ds, "res_levels", None)  # ndstorage's pyramid close() fails on its dict
        for level in levels.values() if isinstance(levels, dict) else [ds]:
            level.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="a finished NDTiff dataset")
    parser.add_argument("dst", type=Path, help="where to grow the copy (must not exist)")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between entries")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--java-style", action="store_true", help="preallocate, then truncate")
    args = parser.parse_args(argv)
    if args.dst.exists():
        parser.error(f"{args.dst} exists")
    grow(args.src, args.dst, seed=args.seed, pause_s=args.pause, java_style=args.java_style)
    return 0


if __name__ == "__main__":
    sys.exit(main())
