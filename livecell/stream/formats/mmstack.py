"""Following a Micro-Manager OME-TIFF stack (``*_MMStack*.ome.tif``) while it is written.

Layout. Micro-Manager writes one TIFF (classic; BigTIFF is read too) per position, page by
page; at ~4 GB it goes on in ``<name>_1.ome.tif``, ``<name>_2.ome.tif`` ... in the same folder.
Each page has uncompressed strips and, in tag 51123 ("MicroManagerMetadata"), a JSON object
with ``ChannelIndex``, ``SliceIndex``, ``FrameIndex``, ``PositionIndex``, ``Channel``,
``PositionName`` and ``PixelSizeUm``. The OME-XML goes into the ImageDescription of the first
page of the first file only when the acquisition ends.

Complete. The reader keeps, per file, where the next-IFD link of the last page it took is,
and walks the chain from there on each poll. A page is complete when its IFD (entry count,
entries, next-IFD link) lies inside the file and is written (no zero tag codes), its strip
or tile offsets and byte counts are written (non-zero) and the bytes lie inside the file, and
its 51123 JSON parses. That covers both write orders: tifffile writes the pixels first and
the IFD last (a written IFD means the pixels are there); Micro-Manager writes IFD, pixels,
then the JSON in one sequential write into a pre-sized file (a parsed JSON means the pixels
before it are there). Where the JSON lies before the pixels, the pixels must also end where
the file ends (else the file was sized ahead: wait for a later page); a page without JSON
must read the same on two polls. A link pointing back into the pages already read is a
link still being written. A page that is still incomplete once the writer has moved past it (a
later IFD is written, the next file has a complete page, or the OME-XML is there) is
reported as a ``DatasetProblem`` and the walk goes on.

Mapping. Per page, from the JSON: position ``PositionName`` (else ``Pos<PositionIndex>``),
t ``FrameIndex``, channel ``ChannelIndex`` (name ``Channel``), z ``SliceIndex``. Pages without
that JSON: once the OME-XML is there, its ``DimensionOrder`` and sizes map the page number
(counted across the files) to t, c, z; before that, t is the page number and z = c = 0. The
position of such pages is the file name's part after ``_MMStack_`` (``Pos0`` when absent).
``finished`` turns True once the OME-XML has appeared and everything before it was returned.

Units: ``<first file>#<file name>/page<n>`` per page (``stack=False``, and page problems);
``<first file>#<position>/t<t>`` per joined (position, t) frame (``stack=True``).
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from livecell.frames import usable_pixel_size_um
from livecell.stream.formats._protocol import DatasetImage, DatasetItem, DatasetProblem, never_done

MM_METADATA_TAG = 51123
MAX_PAGES_PER_POLL = 32  # a replay of a whole stack is read a bounded batch at a time
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}
_TYPE_SIZES |= {13: 4, 16: 8, 17: 8, 18: 8}
_INT_CODES = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 13: "I", 16: "Q", 17: "q", 18: "Q"}
_MAX_ENTRIES = 1000
_SPLIT_SUFFIX = re.compile(r"^(?P<stem>.+?)(?P<ext>\.ome\.tiff?|\.tiff?)$", re.IGNORECASE)


class _Pending(Exception):
    """Not completely written yet; ``reason`` is the problem slug if it stays that way."""

    def __init__(self, detail: str, reason: str = "incomplete-page") -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _NoIfd(_Pending):
    """The link points at nothing written yet (zeros, or past the end): the chain ends here."""


class _Damaged(Exception):
    """The page is written but cannot be used."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class _Entry:
    tag: int
    type: int
    count: int
    value_at: int  # file offset of the value bytes


@dataclass(frozen=True, slots=True)
class _Ifd:
    offset: int
    entries: tuple[_Entry, ...]
    link_at: int  # file offset of this IFD's next-IFD link
    end: int  # past its next-IFD link
    raw: bytes  # the entries as read


@dataclass(frozen=True, slots=True)
class _Page:
    file: Path
    page: int  # index in its file
    number: int  # index across all files of the stack
    shape: tuple[int, int]
    dtype: np.dtype[Any]
    segments: tuple[tuple[int, int], ...]  # (offset, bytecount) of strips or tiles
    tile: tuple[int, int] | None
    meta: dict[str, Any] | None
    end: int  # past its pixel data and its JSON
    json_after_pixels: bool  # Micro-Manager's layout: a whole JSON means whole pixels


@dataclass(frozen=True, slots=True)
class _Key:
    position: str
    t: int
    c: int
    z: int
    channel: str | None
    pixel_size_um: float | None


@dataclass(frozen=True, slots=True)
class _Ome:
    dimension_order: str
    sizes: dict[str, int]
    channels: tuple[str, ...]
    pixel_size_um: float | None


@dataclass
class _File:
    """Walk state of one file of the stack."""

    path: Path
    fh: BinaryIO | None = None
    fmt: str = "<"
    bigtiff: bool = False
    link_at: int | None = None  # where the link to the next unread IFD is
    pages: int = 0
    min_next: int = 0  # the next IFD lies past the bytes of the pages before it
    stat: tuple[int, int] | None = None
    idle: bool = False  # the last walk reached the end of the chain with nothing pending
    fingerprint: bytes | None = None  # IFD bytes of a page without JSON, seen last poll
    broken: bool = False


class MMStackReader:
    """Follows one Micro-Manager OME-TIFF stack (its first file and its splits)."""

    def __init__(
        self,
        path: Path,
        *,
        is_done: Callable[[str], bool] = never_done,
        clock: Callable[[], float] = time.time,
        stack: bool = True,
    ) -> None:
        self.path = Path(path)
        self._is_done = is_done
        self._clock = clock
        self._stack = stack
        match = _SPLIT_SUFFIX.match(self.path.name)
        self._stem, self._ext = (match["stem"], match["ext"]) if match else (self.path.name, "")
        pos = self._stem.split("_MMStack_", 1)
        self._file_position = pos[1] if len(pos) == 2 and pos[1] else "Pos0"
        self._files = [_File(self.path)]
        self._current = 0
        self._numbered = 0  # pages counted across files
        self._ome: _Ome | None = None
        self._ome_stat: tuple[int, int] | None = None
        self._closed = False  # the OME-XML is there
        self._finished = False
        self._behind = False  # the last poll stopped at MAX_PAGES_PER_POLL
        self._taken = 0  # pages taken by this poll
        self._emitted: set[str] = set()
        self._keys_seen: set[tuple[str, int, int, int]] = set()
        self._groups: dict[tuple[str, int], list[tuple[_Page, _Key]]] = {}
        self._group_size: dict[str, int] = {}
        self._closed_groups: set[tuple[str, int]] = set()
        self._by_page_number: bool | None = None  # pages without JSON: t = page number

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def incomplete(self) -> bool:
        """A page not yet whole (the walk stopped short of the end of a file's chain), or
        a stack waiting for more pages."""
        return bool(self._groups) or any(not (f.idle or f.broken) for f in self._files)

    @property
    def behind(self) -> bool:
        return self._behind

    def close(self) -> None:
        for f in self._files:
            if f.fh is not None:
                f.fh.close()
                f.fh = None

    def poll(self) -> list[DatasetItem]:
        self._behind, self._taken = False, 0
        if self._finished:
            return []
        out: list[DatasetItem] = []
        if not self._closed:
            self._check_ome()
        while True:
            f = self._files[self._current]
            nxt = self._next_path(self._current + 1)
            settled = self._closed or self._has_complete_page(nxt)
            self._walk(f, settled, out)
            if self._behind:
                return out
            if settled and nxt.exists():
                self._current += 1
                if self._current == len(self._files):
                    self._files.append(_File(nxt))
                continue
            break
        if self._closed:
            for key in list(self._groups):
                self._finish_group(key, out)
            self._finished = True
            self.close()
        return out

    # --- the files of the stack ---------------------------------------------------

    def _next_path(self, split: int) -> Path:
        return self.path.with_name(f"{self._stem}_{split}{self._ext}")

    def _open(self, f: _File) -> bool:
        """Open ``f`` and read its header; False while it is not there yet."""
        if f.fh is None:
            try:
                f.fh = open(f.path, "rb", buffering=0)  # noqa: SIM115 - closed in close()
            except FileNotFoundError:
                return False
        if f.link_at is None:
            size = os.fstat(f.fh.fileno()).st_size
            if size < 8:
                return False
            head = _read(f.fh, 0, min(size, 16))
            if head[:4] == b"\0\0\0\0":
                return False
            fmt = {b"II": "<", b"MM": ">"}.get(head[:2])
            version = struct.unpack(f"{fmt}H", head[2:4])[0] if fmt else 0
            if fmt is not None and version == 0:
                return False  # the header is being written
            if fmt is None or version not in (42, 43):
                raise _Damaged("not-a-tiff", f"{f.path.name} does not start with a TIFF header")
            f.fmt, f.bigtiff = fmt, version == 43
            f.link_at = 8 if f.bigtiff else 4
        return True

    def _has_complete_page(self, path: Path) -> bool:
        """Whether ``path`` exists and its first page is complete (the writer moved there)."""
        if not path.exists():
            return False
        probe = _File(path)
        try:
            if not self._open(probe) or probe.fh is None or probe.link_at is None:
                return False
            size = os.fstat(probe.fh.fileno()).st_size
            ifd = self._read_ifd(probe, self._link(probe, probe.link_at, size), size)
            self._decode(probe, ifd, size)
            return True
        except (_Pending, _Damaged, OSError):
            return False
        finally:
            if probe.fh is not None:
                probe.fh.close()

    # --- walking the IFD chain ----------------------------------------------------

    def _walk(self, f: _File, settled: bool, out: list[DatasetItem]) -> None:
        if f.broken:
            return
        try:
            if not self._open(f) or f.fh is None or f.link_at is None:
                return
            st = os.fstat(f.fh.fileno())
        except _Damaged as exc:
            f.broken = True
            out.append(self._problem(f"{f.path.name}/header", exc.reason, exc.detail))
            return
        except OSError as exc:
            out.append(self._problem(f"{f.path.name}/header", "unreadable-file", str(exc)))
            f.broken = True
            return
        stat = (st.st_size, st.st_mtime_ns)
        if f.idle and stat == f.stat and not settled and _quiet(st):
            return  # nothing changed since the end of the chain was reached
        f.stat, f.idle = stat, False
        try:
            self._follow(f, st.st_size, settled, out)
        except OSError as exc:
            out.append(self._problem(f"{f.path.name}/page{f.pages}", "unreadable-file", str(exc)))
            f.broken = True

    def _follow(self, f: _File, size: int, settled: bool, out: list[DatasetItem]) -> None:
        """Take the pages the chain of ``f`` reaches, from where the last poll stopped."""
        assert f.link_at is not None
        while True:
            name = f"{f.path.name}/page{f.pages}"
            try:
                offset = self._link(f, f.link_at, size)
                if offset == 0:
                    f.idle = True
                    return
                if offset < f.min_next:  # a stack grows forward; also a link half written
                    detail = f"the link to page {f.pages} points back to {offset}"
                    raise _Pending(detail, "bad-link")
                ifd = self._read_ifd(f, offset, size)
            except _NoIfd:
                return
            except _Pending as exc:
                if settled:
                    out.append(self._problem(name, exc.reason, exc.detail))
                    f.broken = True
                return
            except _Damaged as exc:
                out.append(self._problem(name, exc.reason, exc.detail))
                f.broken = True
                return
            page: _Page | None = None
            try:
                page = self._decode(f, ifd, size)
            except _Pending as exc:
                if not (settled or self._later_ifd_written(f, ifd, size)):
                    return
                detail = f"{exc.detail}, and the writer has moved on"
                out.append(self._problem(name, exc.reason, detail))
            except _Damaged as exc:
                out.append(self._problem(name, exc.reason, exc.detail))
            else:
                moved_on = settled or self._later_ifd_written(f, ifd, size)
                if not (moved_on or page.json_after_pixels or page.end >= size):
                    return  # bytes follow the pixels: a file sized ahead, pixels maybe not in
                if page.meta is None and not moved_on:
                    # No JSON to prove the IFD whole: take it once it reads the same twice.
                    fingerprint = ifd.raw + repr(page.segments).encode()
                    if fingerprint != f.fingerprint:
                        f.fingerprint = fingerprint
                        return
                f.fingerprint = None
                self._take(page, out)
            f.min_next = max(f.min_next, ifd.link_at + 1)
            if page is not None:  # not from a damaged IFD's values
                f.min_next = max(f.min_next, ifd.end, page.end)
            f.link_at = ifd.link_at
            f.pages += 1
            self._numbered += 1
            self._taken += 1
            if self._taken >= MAX_PAGES_PER_POLL:
                self._behind = True  # the rest at the next poll: memory stays bounded
                return

    def _link(self, f: _File, at: int, size: int) -> int:
        width = 8 if f.bigtiff else 4
        if at + width > size:
            raise _NoIfd("no IFD yet")
        assert f.fh is not None
        value: int = struct.unpack(f"{f.fmt}{'Q' if f.bigtiff else 'I'}", _read(f.fh, at, width))[0]
        return value

    def _read_ifd(self, f: _File, offset: int, size: int) -> _Ifd:
        """The IFD at ``offset``: raises _Pending while it is not (fully) written."""
        assert f.fh is not None
        count_size, entry_size, link_size = (8, 20, 8) if f.bigtiff else (2, 12, 4)
        if offset + count_size > size:
            raise _NoIfd("no IFD yet")
        raw = _read(f.fh, offset, count_size)
        count = struct.unpack(f"{f.fmt}{'Q' if f.bigtiff else 'H'}", raw)[0]
        if count == 0:
            raise _NoIfd("no IFD yet")  # zeros: a gap or pre-sized space not written yet
        if count > _MAX_ENTRIES:
            raise _Pending(f"IFD at {offset} of {f.path.name} claims {count} entries", "bad-ifd")
        end = offset + count_size + count * entry_size + link_size
        if end > size:
            raise _Pending(f"the IFD at {offset} ends past the end of the file")
        table = _read(f.fh, offset + count_size, count * entry_size)
        head_fmt = f"{f.fmt}HH{'Q' if f.bigtiff else 'I'}"
        inline = 8 if f.bigtiff else 4
        entries = []
        last_tag = 0
        for i in range(count):
            at = offset + count_size + i * entry_size
            tag, typ, n = struct.unpack_from(head_fmt, table, i * entry_size)
            if tag == 0 or tag < last_tag:
                raise _Pending(f"the IFD at {offset} is still being written")
            last_tag = tag
            item = _TYPE_SIZES.get(typ)
            if item is None:
                raise _Pending(f"tag {tag} at {at} has unknown type {typ}", "bad-ifd")
            value_at = at + entry_size - inline
            if item * n > inline:
                value_at = struct.unpack_from(
                    f"{f.fmt}{'Q' if f.bigtiff else 'I'}",
                    table,
                    i * entry_size + entry_size - inline,
                )[0]
            entries.append(_Entry(tag, typ, n, value_at))
        return _Ifd(offset, tuple(entries), end - link_size, end, table)

    def _later_ifd_written(self, f: _File, ifd: _Ifd, size: int) -> bool:
        """Whether the IFD this one links to is written: the writer is past this page."""
        try:
            offset = self._link(f, ifd.link_at, size)
            if offset < ifd.end:
                return False
            self._read_ifd(f, offset, size)
        except (_Pending, _Damaged):
            return False
        return True

    def _values(self, f: _File, e: _Entry, size: int) -> tuple[int, ...]:
        code = _INT_CODES.get(e.type)
        if code is None:
            raise _Pending(f"tag {e.tag} has non-integer type {e.type}", "bad-ifd")
        data = self._bytes(f, e, size)
        return struct.unpack(f"{f.fmt}{e.count}{code}", data)

    def _bytes(self, f: _File, e: _Entry, size: int) -> bytes:
        n = e.count * _TYPE_SIZES[e.type]
        if e.value_at + n > size:
            raise _Pending(f"the value of tag {e.tag} lies past the end of the file")
        assert f.fh is not None
        return _read(f.fh, e.value_at, n)

    def _decode(self, f: _File, ifd: _Ifd, size: int) -> _Page:
        tags = {e.tag: e for e in ifd.entries}

        def one(tag: int, default: int | None = None) -> int:
            if tag not in tags:
                if default is None:
                    raise _Pending(f"page at {ifd.offset} has no tag {tag}", "bad-ifd")
                return default
            return self._values(f, tags[tag], size)[0]

        def need(tag: int) -> _Entry:
            if tag not in tags:
                raise _Pending(f"page at {ifd.offset} has no tag {tag}", "bad-ifd")
            return tags[tag]

        width, height = one(256), one(257)
        bits, fmt, spp, compression = one(258, 1), one(339, 1), one(277, 1), one(259, 1)
        if compression == 0:  # no TIFF compression is 0: bytes not written yet (zeros)
            raise _Pending(f"page at {ifd.offset} has compression 0", "bad-ifd")
        if compression != 1:
            raise _Damaged("unsupported-compression", f"compression {compression} (only 1)")
        if spp != 1:
            raise _Damaged("unsupported-pixels", f"{spp} samples per pixel (only 1)")
        kind = {1: "u", 2: "i", 3: "f"}.get(fmt)
        if kind is None or bits not in (8, 16, 32, 64) or (kind == "f" and bits == 8):
            raise _Damaged("unsupported-pixels", f"{bits}-bit sample format {fmt}")
        dtype = np.dtype(f"{f.fmt}{kind}{bits // 8}")
        tile: tuple[int, int] | None = None
        if 324 in tags:
            tile = (one(323), one(322))
            offsets, counts = self._values(f, tags[324], size), self._values(f, need(325), size)
        elif 273 in tags:
            offsets, counts = self._values(f, tags[273], size), self._values(f, need(279), size)
        else:
            raise _Pending(f"page at {ifd.offset} has neither strips nor tiles", "bad-ifd")
        if len(offsets) != len(counts) or not offsets:
            raise _Pending(f"{len(offsets)} data offsets but {len(counts)} byte counts", "bad-ifd")
        if 0 in offsets or 0 in counts:
            raise _Pending(f"the data offsets of the page at {ifd.offset} are not written yet")
        end = max(o + c for o, c in zip(offsets, counts, strict=True))
        if end > size:
            raise _Pending(f"the pixels of the page at {ifd.offset} end past the end of the file")
        nbytes = width * height * dtype.itemsize
        if tile is not None:
            across, down = math.ceil(width / tile[1]), math.ceil(height / tile[0])
            if len(offsets) != across * down or any(
                c < tile[0] * tile[1] * dtype.itemsize for c in counts
            ):
                raise _Pending(f"{len(offsets)} tiles do not cover {width}x{height}", "bad-strips")
        elif sum(counts) < nbytes:
            detail = f"strips hold {sum(counts)} bytes, the image needs {nbytes}"
            raise _Pending(detail, "bad-strips")
        meta = None
        json_after_pixels = False
        if MM_METADATA_TAG in tags:
            text = self._bytes(f, tags[MM_METADATA_TAG], size).rstrip(b"\0")
            try:
                meta = json.loads(text.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                detail = "its MicroManagerMetadata (tag 51123) is not complete JSON"
                raise _Pending(detail, "bad-metadata") from None
            if not isinstance(meta, dict):
                raise _Damaged("bad-metadata", "MicroManagerMetadata (tag 51123) is not an object")
            e = tags[MM_METADATA_TAG]
            json_after_pixels = e.value_at >= end
            end = max(end, e.value_at + e.count)
        return _Page(
            f.path,
            f.pages,
            self._numbered,
            (height, width),
            dtype,
            tuple(zip(offsets, counts, strict=True)),
            tile,
            meta,
            end,
            json_after_pixels,
        )

    # --- the OME-XML ------------------------------------------------------------

    def _check_ome(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError:
            return
        stat = (st.st_size, st.st_mtime_ns)
        if stat == self._ome_stat and _quiet(st):
            return
        probe = _File(self.path)
        try:
            if not self._open(probe) or probe.link_at is None:
                return
            ifd = self._read_ifd(probe, self._link(probe, probe.link_at, st.st_size), st.st_size)
            for e in ifd.entries:
                if e.tag != 270 or e.count < 2:
                    continue
                text = self._bytes(probe, e, st.st_size).rstrip(b"\0").decode("utf-8", "replace")
                if "<OME" not in text[:1000]:
                    continue
                try:
                    root = ET.fromstring(text)
                except ET.ParseError:
                    return  # still being written: look again next poll
                self._ome = _parse_ome(root, self._file_position)
                self._closed = True
                return
            self._ome_stat = stat
        except (_Pending, _Damaged, OSError, UnicodeError):
            return
        finally:
            if probe.fh is not None:
                probe.fh.close()

    # --- pages to frames --------------------------------------------------------

    def _key(self, page: _Page) -> _Key:
        meta = page.meta or {}
        ome = self._ome
        has_mm = "FrameIndex" in meta
        if not has_mm and self._by_page_number is None:
            self._by_page_number = ome is None  # one rule for all such pages of this reader
        if has_mm:
            t, c, z = (_index(meta, k) for k in ("FrameIndex", "ChannelIndex", "SliceIndex"))
        elif ome is not None and not self._by_page_number:
            t, c, z = _ome_indices(ome, page.number)
        else:
            t, c, z = page.number, 0, 0
        name = meta.get("PositionName")
        if isinstance(name, str) and name:
            position = name
        elif has_mm and "PositionIndex" in meta:
            position = f"Pos{_index(meta, 'PositionIndex')}"
        else:
            position = self._file_position
        channel = meta.get("Channel") if isinstance(meta.get("Channel"), str) else None
        if channel is None and ome is not None and c < len(ome.channels):
            channel = ome.channels[c] or None
        pixel_size = usable_pixel_size_um(meta.get("PixelSizeUm"))
        if pixel_size is None and ome is not None:
            pixel_size = ome.pixel_size_um
        if not has_mm and (ome is None or self._by_page_number):
            return _Key(position, t, -1, -1, None, pixel_size)  # nothing says c or z
        return _Key(position, t, c, z, channel, pixel_size)

    def _take(self, page: _Page, out: list[DatasetItem]) -> None:
        try:
            key = self._key(page)
        except _Damaged as exc:
            out.append(self._problem(_page_name(page), exc.reason, exc.detail))
            return
        ident = (key.position, key.t, key.c, key.z)
        if ident in self._keys_seen:
            detail = (
                f"{_page_name(page)} repeats position {key.position} t={key.t} c={key.c} z={key.z}"
            )
            out.append(self._problem(_page_name(page), "duplicate-image", detail, key))
            return
        self._keys_seen.add(ident)
        if not self._stack:
            self._emit_page(page, key, out)
            return
        group = (key.position, key.t)
        for other in [g for g in self._groups if g != group]:
            self._finish_group(other, out)  # the writer moved on
        if group in self._closed_groups:
            detail = f"{_page_name(page)} belongs to {key.position} t={key.t}, already complete"
            out.append(self._problem(_page_name(page), "late-image", detail, key))
            return
        self._groups.setdefault(group, []).append((page, key))
        expected = self._group_size.get(key.position)
        if expected is not None and len(self._groups[group]) >= expected:
            self._finish_group(group, out)

    def _emit_page(self, page: _Page, key: _Key, out: list[DatasetItem]) -> None:
        unit = f"{self.path}#{_page_name(page)}"
        position = key.position
        if key.c >= 0:
            position += f"-c={key.channel or key.c}-z={key.z}"
        if unit in self._emitted or self._is_done(unit):
            self._emitted.add(unit)
            return
        self._emitted.add(unit)
        try:
            pixels = self._pixels(page)
        except (OSError, _Damaged, _Pending) as exc:
            out.append(self._problem(_page_name(page), "unreadable-page", str(exc), key))
            return
        channels = (key.channel,) if key.channel else ()
        image = DatasetImage(
            unit, position, key.t, pixels, "YX", self._clock(), key.pixel_size_um, channels
        )
        out.append(image)

    def _finish_group(self, group: tuple[str, int], out: list[DatasetItem]) -> None:
        members = self._groups.pop(group)
        self._closed_groups.add(group)
        position, t = group
        zs = sorted({k.z for _, k in members})
        cs = sorted({k.c for _, k in members})
        # A position's first stack says how many pages make one: its z x c grid, not its
        # page count, which a page lost to damage would make one short for every stack.
        expected = self._group_size.setdefault(position, len(zs) * len(cs))
        name = f"{position}/t{t}"
        unit = f"{self.path}#{name}"
        if unit in self._emitted or self._is_done(unit):
            self._emitted.add(unit)
            return
        self._emitted.add(unit)
        key0 = members[0][1]
        cells = {(k.z, k.c): p for p, k in members}
        if not len(members) == len(cells) == len(zs) * len(cs) == expected:
            have = sorted(cells)
            detail = f"{name}: images (z, c) {have}, expected {expected} in a full z/c grid"
            out.append(self._problem(name, "incomplete-stack", detail, key0))
            return
        try:
            planes = [self._pixels(cells[(z, c)]) for z in zs for c in cs]
            if len({(p.shape, p.dtype) for p in planes}) != 1:
                raise _Damaged("mixed-images", f"{name}: images differ in shape or type")
        except (OSError, _Damaged, _Pending) as exc:
            out.append(self._problem(name, "unreadable-page", str(exc), key0))
            return
        pixels = np.stack(planes).reshape(len(zs), len(cs), *planes[0].shape)
        axes = "ZCYX"
        if len(cs) == 1:
            pixels, axes = pixels[:, 0], axes.replace("C", "")
        if len(zs) == 1:
            pixels, axes = pixels[0], axes.replace("Z", "")
        names = {k.c: k.channel for _, k in members}
        channels = tuple(names[c] or str(c) for c in cs)
        if len(cs) == 1 and not names[cs[0]]:
            channels = ()
        image = DatasetImage(
            unit,
            position,
            t,
            np.ascontiguousarray(pixels),
            axes,
            self._clock(),
            key0.pixel_size_um,
            channels,
        )
        out.append(image)

    def _pixels(self, page: _Page) -> np.ndarray:
        f = next((x for x in self._files if x.path == page.file), None)
        if f is None or f.fh is None:
            raise OSError(f"{page.file.name} is closed")
        h, w = page.shape
        item = page.dtype.itemsize
        if page.tile is None:
            raw = b"".join(_read(f.fh, o, c) for o, c in page.segments)
            if len(raw) < h * w * item:
                raise _Damaged("unreadable-page", f"{_page_name(page)}: pixels cut short")
            arr = np.frombuffer(raw, page.dtype, h * w).reshape(h, w)
        else:
            th, tw = page.tile
            across = math.ceil(w / tw)
            full = np.empty((math.ceil(h / th) * th, across * tw), page.dtype)
            for i, (o, _) in enumerate(page.segments):
                data = _read(f.fh, o, th * tw * item)
                if len(data) < th * tw * item:
                    raise _Damaged("unreadable-page", f"{_page_name(page)}: tile cut short")
                r, c = divmod(i, across)
                full[r * th : (r + 1) * th, c * tw : (c + 1) * tw] = np.frombuffer(
                    data, page.dtype
                ).reshape(th, tw)
            arr = full[:h, :w]
        return np.ascontiguousarray(arr, dtype=page.dtype.newbyteorder("<"))

    def _problem(
        self, name: str, reason: str, detail: str, key: _Key | None = None
    ) -> DatasetProblem:
        return DatasetProblem(
            f"{self.path}#{name}",
            reason,
            detail,
            self._clock(),
            key.position if key else None,
            key.t if key else None,
        )


def _quiet(st: os.stat_result) -> bool:
    """Unchanged for over a second: a write in the same timestamp tick as our look is done."""
    return time.time() - st.st_mtime_ns / 1e9 > 1.0


def _page_name(page: _Page) -> str:
    return f"{page.file.name}/page{page.page}"


def _read(fh: BinaryIO, offset: int, n: int) -> bytes:
    """``n`` bytes at ``offset``, unbuffered (a growing file); _Pending if the file is shorter."""
    fh.seek(offset)
    parts = []
    while n > 0:
        chunk = fh.read(n)
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
    if n > 0:
        raise _Pending(f"the file ends before byte {offset + sum(map(len, parts)) + n}")
    return b"".join(parts)


def _index(meta: dict[str, Any], key: str) -> int:
    value = meta.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Damaged("bad-metadata", f"MicroManagerMetadata {key} is {value!r}, not an index")
    return value


def _ome_indices(ome: _Ome, number: int) -> tuple[int, int, int]:
    """(t, c, z) of the ``number``-th page by the OME ``DimensionOrder`` (fastest first)."""
    idx = {"T": 0, "C": 0, "Z": 0}
    rest = number
    for axis in ome.dimension_order[2:]:
        n = max(1, ome.sizes.get(axis, 1))
        idx[axis], rest = (rest % n, rest // n) if axis != ome.dimension_order[-1] else (rest, 0)
    return idx["T"], idx["C"], idx["Z"]


def _parse_ome(root: ET.Element, position: str) -> _Ome:
    def local(el: ET.Element) -> str:
        return el.tag.rsplit("}", 1)[-1]

    images = [el for el in root.iter() if local(el) == "Image"]
    image = next((im for im in images if im.get("Name") == position), images[0] if images else None)
    pixels = (
        next((el for el in image.iter() if local(el) == "Pixels"), None)
        if image is not None
        else None
    )
    if pixels is None:
        return _Ome("XYCZT", {}, (), None)
    order = pixels.get("DimensionOrder", "XYCZT").upper()
    if sorted(order) != sorted("XYCZT") or not order.startswith("XY"):
        order = "XYCZT"
    sizes = {}
    for axis in "CZT":
        try:
            sizes[axis] = int(pixels.get(f"Size{axis}", "1"))
        except ValueError:
            sizes[axis] = 1
    channels = tuple(el.get("Name", "") for el in pixels if local(el) == "Channel")
    scale = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3}.get(pixels.get("PhysicalSizeXUnit", "µm"))
    try:
        size = float(pixels.get("PhysicalSizeX", "nan")) * (scale or math.nan)
    except ValueError:
        size = math.nan
    return _Ome(order, sizes, channels, usable_pixel_size_um(size))
