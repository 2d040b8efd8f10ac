"""Follow a Micro-Manager NDTiff dataset (v2.x, v3.x) while it is written.

Layout: a folder (``{name}/`` for v3, ``{name}/Full resolution/`` for v2 and
multi-resolution datasets) holds ``NDTiff.index`` and one or more
``{name}_NDTiffStack[_N].tif``. The index is append-only; each entry is

    u32 K, K bytes axes JSON ({"time": 3, "channel": "DAPI", "z": 2, ...}),
    u32 N, N bytes stack file name,
    u32 pixel offset, width, height, pixel type, pixel compression,
        metadata offset, metadata length, metadata compression

(little-endian; pixel types 0 = 8 bit, 2 = 8-bit RGB, 1/3/4/5/6 = 16/10/12/14/11 bit
in two bytes). The pixels lie uncompressed at the offset in the stack file.

Complete: an entry is used once all its bytes are in the index AND its pixel bytes
lie inside the stack file's current size. Micro-Manager's Java writer preallocates
the index (25 MB of zeros) and the stack files (4 GB): a zero axes length means "not
written yet", and an entry followed by zeros is taken only once its metadata offset
is where the pixels end (its last fields are written).

Finished: both writers (Java ``NDTiffStorage``, Python ``ndstorage``) end a dataset
by writing a null next-IFD offset after the last image and truncating the stack file
(and the Java index) to what was written. ``finished`` turns True when the index has
nothing after its last entry, the last image's next-IFD offset is 0, its stack file
ends where its metadata ends, no stack file is unreferenced (a roll-over to a new
file), and all that holds on two polls in a row.

Pyramid levels (``Downsampled_x*``) are ignored. An entry that cannot be used (bad
JSON, unknown pixel type, compression, pixels never inside the file) becomes a
``DatasetProblem``; the rest goes on.
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livecell.frames import usable_pixel_size_um
from livecell.stream.formats._protocol import DatasetImage, DatasetItem, DatasetProblem, never_done

INDEX_NAME = "NDTiff.index"
FULL_RESOLUTION = "Full resolution"
_SUMMARY_MD_HEADER = 2355492
_MAX_NAME_BYTES = 1 << 20  # an axes JSON or file name longer than this is a broken index
_CHUNK = 1 << 16
# A replay of a whole dataset is read a bounded batch per poll (``behind`` says more waits)
MAX_IMAGES_PER_POLL = 32
MAX_STACKS_PER_POLL = 4
_FIXED = struct.Struct("<8I")
# pixel type -> (numpy dtype, samples per pixel)
_PIXEL_TYPES: dict[int, tuple[str, int]] = {
    0: ("u1", 1),  # 8 bit
    1: ("u2", 1),  # 16 bit
    2: ("u1", 3),  # 8-bit RGB
    3: ("u2", 1),  # 10 bit
    4: ("u2", 1),  # 12 bit
    5: ("u2", 1),  # 14 bit
    6: ("u2", 1),  # 11 bit
}
_RGB = ("R", "G", "B")
_KNOWN_AXES = frozenset({"time", "position", "row", "column", "channel", "z"})


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One parsed NDTiff.index entry (``number`` counts entries from 0)."""

    number: int
    axes: tuple[tuple[str, int | str], ...]
    filename: str
    pixel_offset: int
    width: int
    height: int
    pixel_type: int
    pixel_compression: int
    metadata_offset: int
    metadata_length: int
    metadata_compression: int

    @property
    def pixel_bytes(self) -> int:
        dtype, samples = _PIXEL_TYPES[self.pixel_type]
        return self.width * self.height * samples * np.dtype(dtype).itemsize

    @property
    def pixel_end(self) -> int:
        return self.pixel_offset + self.pixel_bytes

    @property
    def next_ifd_location(self) -> int:
        """Where the writer put this image's next-IFD offset (0 after the last image)."""
        return self.pixel_offset - 16 - 4 - (6 if self.pixel_type == 2 else 0)

    def axis(self, name: str) -> int | str | None:
        return dict(self.axes).get(name)


@dataclass(frozen=True, slots=True)
class BadEntry:
    """An index entry whose bytes are all there but cannot be used."""

    number: int
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Incomplete:
    """The index ends (or is zero-padded) before the next entry is whole."""


@dataclass(frozen=True, slots=True)
class BrokenIndex:
    """Entry lengths that cannot be real: nothing after this point can be found."""

    number: int
    detail: str


Parsed = IndexEntry | BadEntry


def parse_entry(buf: bytes, pos: int, number: int) -> tuple[Parsed, int] | Incomplete | BrokenIndex:
    """Parse the entry at ``buf[pos:]``: the entry (or why it is bad) and where it ends."""
    start = pos
    fields: list[bytes] = []
    for what in ("axes", "file name"):
        if pos + 4 > len(buf):
            return Incomplete()
        (length,) = struct.unpack_from("<I", buf, pos)
        if length == 0:
            return Incomplete()  # not written yet (the Java writer pads with zeros)
        if length > _MAX_NAME_BYTES:
            return BrokenIndex(
                number, f"index entry {number} at byte {start}: {what} length {length} bytes"
            )
        if pos + 4 + length > len(buf):
            return Incomplete()
        fields.append(buf[pos + 4 : pos + 4 + length])
        pos += 4 + length
    if pos + _FIXED.size > len(buf):
        return Incomplete()
    values = _FIXED.unpack_from(buf, pos)
    end = pos + _FIXED.size
    raw_axes, raw_name = fields
    try:
        axes = json.loads(raw_axes.decode("utf-8"))
        filename = raw_name.decode("utf-8")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return BadEntry(number, "bad-index-entry", f"index entry {number}: {exc}"), end
    if not isinstance(axes, dict) or not all(
        isinstance(v, int | str) and not isinstance(v, bool) for v in axes.values()
    ):
        return BadEntry(number, "bad-axes", f"index entry {number}: axes {axes!r}"), end
    for name in ("time", "z", "row", "column"):
        if name in axes and not isinstance(axes[name], int):
            return BadEntry(
                number, "bad-axes", f"index entry {number}: axis {name!r} = {axes[name]!r}"
            ), end
    if "/" in filename or "\\" in filename or filename in (".", ".."):
        return BadEntry(number, "bad-file-name", f"index entry {number}: {filename!r}"), end
    pix_off, width, height, ptype, pcomp, md_off, md_len, md_comp = values
    if ptype not in _PIXEL_TYPES:
        return BadEntry(
            number, "unknown-pixel-type", f"index entry {number}: pixel type {ptype}"
        ), end
    if pcomp != 0:
        return BadEntry(
            number, "compressed-pixels", f"index entry {number}: pixel compression {pcomp}"
        ), end
    if width == 0 or height == 0:
        return BadEntry(
            number, "bad-image-size", f"index entry {number}: {width} x {height} pixels"
        ), end
    entry = IndexEntry(
        number=number,
        axes=tuple(sorted(axes.items())),
        filename=filename,
        pixel_offset=pix_off,
        width=width,
        height=height,
        pixel_type=ptype,
        pixel_compression=pcomp,
        metadata_offset=md_off,
        metadata_length=md_len,
        metadata_compression=md_comp,
    )
    if entry.next_ifd_location < 0:
        return BadEntry(
            number, "bad-pixel-offset", f"index entry {number}: pixel offset {pix_off}"
        ), end
    return entry, end


def _looks_written(entry: IndexEntry) -> bool:
    """Both writers put the metadata right after the pixels, in the entry's last fields."""
    return entry.metadata_length > 0 and entry.metadata_offset == entry.pixel_end


def axes_name(axes: tuple[tuple[str, int | str], ...]) -> str:
    """An image's stable name (``stack=False`` units): its sorted axes, ``channel=DAPI,time=3``."""
    return ",".join(f"{k}={v}" for k, v in axes)


@dataclass(slots=True)
class _StackFile:
    fd: int
    big_endian: bool
    channel_names: tuple[str, ...]
    pixel_size_um: float | None


@dataclass(slots=True)
class _Group:
    """The images of one (position, t) in stack mode."""

    key: tuple[str, int]
    members: list[IndexEntry] = field(default_factory=list)
    arrived: set[int] = field(default_factory=set)  # entry numbers whose pixels are there
    bad: list[IndexEntry] = field(default_factory=list)
    closed: bool = False
    emitted: bool = False
    first_of_position: bool = False


class NDTiffReader:
    """Follow one NDTiff dataset; ``poll()`` hands out each complete image once.

    ``stack=True`` joins the z-slices and channels of one (position, t) into one frame;
    ``stack=False`` hands out every image alone, with its channel and z in the position.
    """

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
        self._dir: Path | None = None
        self._index_fd: int | None = None
        self._index_pos = 0
        self._entry_count = 0
        self._broken = False
        self._waiting: list[IndexEntry] = []  # parsed, pixels not yet in the stack file
        self._files: dict[str, _StackFile] = {}
        self._seen_axes: set[tuple[tuple[str, int | str], ...]] = set()
        self._last_arrived: IndexEntry | None = None  # the latest entry whose pixels are there
        self._last_span = (0, 0)  # where it lies in the index
        self._spans: dict[int, tuple[int, int]] = {}  # same, for entries still waiting
        self._finish_seen_at: int | None = None  # index size when the end was first seen
        self._finished = False
        self._behind = False  # the last poll stopped at its batch limit
        self._string_channels: list[str] = []
        # stack mode
        self._groups: dict[tuple[str, int], _Group] = {}
        self._open_groups: list[_Group] = []
        self._current_key: tuple[str, int] | None = None
        self._expected: dict[str, int] = {}

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def behind(self) -> bool:
        return self._behind

    @property
    def incomplete(self) -> bool:
        """Index entries whose pixels are not (all) in the stack file, or a stack not whole."""
        return bool(self._waiting or self._open_groups)

    def close(self) -> None:
        for f in self._files.values():
            os.close(f.fd)
        self._files.clear()
        if self._index_fd is not None:
            os.close(self._index_fd)
            self._index_fd = None

    def poll(self) -> list[DatasetItem]:
        self._behind = False
        out: list[DatasetItem] = []
        if self._finished:
            self._emit_groups(out)  # stacks left over from a batch-limited finish
            return out
        if not self._open_index():
            return out
        index_size = os.fstat(self._require_index()).st_size
        if not self._broken and index_size > self._index_pos:
            for parsed in self._read_index(index_size, out):
                self._accept(parsed, out)
        self._arrive(out)
        if self._check_finished(index_size):
            self._finish(out)
        elif self._stack:
            self._emit_groups(out)
        return out

    # -- index -------------------------------------------------------------------------

    def _open_index(self) -> bool:
        if self._index_fd is not None:
            return True
        for folder in (self.path, self.path / FULL_RESOLUTION):
            try:
                self._index_fd = os.open(folder / INDEX_NAME, os.O_RDONLY)
            except FileNotFoundError:
                continue
            self._dir = folder
            return True
        return False

    def _require_index(self) -> int:
        if self._index_fd is None:
            raise RuntimeError("NDTiff index is not open")
        return self._index_fd

    def _read_index(self, index_size: int, out: list[DatasetItem]) -> list[Parsed]:
        """Parse the whole entries after the last one read; advance past them."""
        fd = self._require_index()
        parsed: list[Parsed] = []
        if os.pread(fd, 4, self._index_pos) == b"\0\0\0\0":
            return parsed  # zero padding (Java writer): nothing new yet
        want = _CHUNK
        while self._index_pos < index_size:
            buf = os.pread(fd, min(want, index_size - self._index_pos), self._index_pos)
            pos = 0
            while True:
                result = parse_entry(buf, pos, self._entry_count)
                if isinstance(result, BrokenIndex):
                    self._broken = True
                    out.append(
                        self._problem(f"entry-{result.number}", "broken-index", result.detail)
                    )
                    self._index_pos += pos
                    return parsed
                if isinstance(result, Incomplete):
                    if buf[pos : pos + 4] == b"\0\0\0\0":
                        self._index_pos += pos
                        return parsed  # zero padding: nothing more written yet
                    break
                item, end = result
                followed_by_zeros = (end + 4 <= len(buf) and buf[end : end + 4] == b"\0\0\0\0") or (
                    end + 4 > len(buf) and self._index_pos + end < index_size
                )
                if followed_by_zeros and not (
                    isinstance(item, IndexEntry) and _looks_written(item)
                ):
                    break  # may still be being written into the zero padding: next poll
                parsed.append(item)
                if isinstance(item, IndexEntry):
                    self._spans[item.number] = (self._index_pos + pos, self._index_pos + end)
                self._entry_count += 1
                pos = end
                if not self._stack and len(parsed) >= MAX_IMAGES_PER_POLL:
                    self._index_pos += pos
                    self._behind = True  # the rest at the next poll: memory stays bounded
                    return parsed
            self._index_pos += pos
            if pos == 0:
                if len(buf) < want or len(buf) >= _MAX_NAME_BYTES * 2 + 64:
                    break  # an entry not yet whole (or zero padding)
                want *= 4  # an entry larger than the chunk: read more
            elif len(buf) < want:
                break
        return parsed

    def _accept(self, parsed: Parsed, out: list[DatasetItem]) -> None:
        if isinstance(parsed, BadEntry):
            out.append(self._problem(f"entry-{parsed.number}", parsed.reason, parsed.detail))
            return
        if parsed.axes in self._seen_axes:
            out.append(
                self._problem(
                    f"entry-{parsed.number}",
                    "duplicate-axes",
                    f"index entry {parsed.number}: axes {axes_name(parsed.axes)} already written",
                )
            )
            return
        self._seen_axes.add(parsed.axes)
        channel = parsed.axis("channel")
        if isinstance(channel, str) and channel not in self._string_channels:
            self._string_channels.append(channel)
        if self._stack:
            self._add_to_group(parsed, out)
        self._waiting.append(parsed)

    # -- pixels ------------------------------------------------------------------------

    def _stack_file(self, filename: str) -> _StackFile | None:
        known = self._files.get(filename)
        if known is not None:
            return known
        if self._dir is None:
            return None
        try:
            fd = os.open(self._dir / filename, os.O_RDONLY)
        except FileNotFoundError:
            return None
        header = os.pread(fd, 32, 0)
        if len(header) < 32:
            os.close(fd)
            return None  # not even the header yet
        big = header[:2] == b"MM"
        order = ">" if big else "<"
        names: tuple[str, ...] = ()
        pixel_size: float | None = None
        # the summary metadata header sits at byte 16 (v2) or 20 (v3)
        for at in (20, 16):
            if struct.unpack_from(order + "I", header, at)[0] == _SUMMARY_MD_HEADER:
                (length,) = struct.unpack_from(order + "I", header, at + 4)
                raw = os.pread(fd, min(length, _MAX_NAME_BYTES * 16), at + 8)
                try:
                    summary = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    break
                if isinstance(summary, dict):
                    ch = summary.get("ChNames")
                    if isinstance(ch, list) and all(isinstance(c, str) for c in ch):
                        names = tuple(ch)
                    pixel_size = usable_pixel_size_um(summary.get("PixelSize_um"))
                break
        opened = _StackFile(fd, big, names, pixel_size)
        self._files[filename] = opened
        return opened

    def _has_pixels(self, entry: IndexEntry) -> bool:
        f = self._stack_file(entry.filename)
        return f is not None and os.fstat(f.fd).st_size >= entry.pixel_end

    def _arrive(self, out: list[DatasetItem]) -> None:
        still: list[IndexEntry] = []
        for entry in self._waiting:
            if not self._has_pixels(entry):
                still.append(entry)
                continue
            span = self._spans.pop(entry.number)
            if self._last_arrived is None or entry.number > self._last_arrived.number:
                self._last_arrived, self._last_span = entry, span
            if self._stack:
                self._groups[self._group_key(entry)].arrived.add(entry.number)
            else:
                self._emit_single(entry, out)
        self._waiting = still

    def _read_pixels(self, entry: IndexEntry) -> np.ndarray:
        f = self._stack_file(entry.filename)
        if f is None:
            raise OSError(f"stack file {entry.filename} is gone")
        dtype, samples = _PIXEL_TYPES[entry.pixel_type]
        shape = (entry.height, entry.width, samples) if samples > 1 else (entry.height, entry.width)
        pixels = np.empty(shape, dtype=np.dtype(("<" if not f.big_endian else ">") + dtype))
        got = os.preadv(f.fd, [pixels.data.cast("B")], entry.pixel_offset)
        if got != entry.pixel_bytes:
            raise OSError(
                f"read {got} of {entry.pixel_bytes} pixel bytes at {entry.pixel_offset} "
                f"in {entry.filename}"
            )
        if f.big_endian:
            pixels = pixels.astype(pixels.dtype.newbyteorder("<"))
        if samples > 1:
            pixels = np.ascontiguousarray(np.moveaxis(pixels, -1, 0))  # RGB -> CYX
        return pixels

    # -- names -------------------------------------------------------------------------

    def _unit(self, name: str) -> str:
        return f"{self.path}#{name}"

    def _problem(
        self, name: str, reason: str, detail: str, position: str | None = None, t: int | None = None
    ) -> DatasetProblem:
        return DatasetProblem(
            self._unit(name), reason, detail, self._clock(), position=position, t=t
        )

    @staticmethod
    def _position(entry: IndexEntry) -> str:
        axes = dict(entry.axes)
        parts: list[str] = []
        pos = axes.get("position")
        if pos is not None:
            parts.append(f"Pos{pos}" if isinstance(pos, int) else pos)
        if "row" in axes or "column" in axes:
            parts.append(f"r{axes.get('row', 0)}c{axes.get('column', 0)}")
        if not parts:
            parts.append("Pos0")
        parts.extend(f"{k}={v}" for k, v in entry.axes if k not in _KNOWN_AXES)
        return "-".join(parts)

    @staticmethod
    def _t(entry: IndexEntry) -> int:
        t = entry.axis("time")
        return t if isinstance(t, int) else 0

    def _channel_name(self, entry: IndexEntry) -> str | None:
        channel = entry.axis("channel")
        if channel is None or isinstance(channel, str):
            return channel
        f = self._files.get(entry.filename)
        if f is not None and 0 <= channel < len(f.channel_names):
            return f.channel_names[channel]
        return str(channel)

    def _pixel_size(self, entry: IndexEntry) -> float | None:
        f = self._files.get(entry.filename)
        return f.pixel_size_um if f is not None else None

    # -- one image per frame -----------------------------------------------------------

    def _emit_single(self, entry: IndexEntry, out: list[DatasetItem]) -> None:
        unit = self._unit(axes_name(entry.axes))
        if self._is_done(unit):
            return
        position = self._position(entry)
        channel = self._channel_name(entry)
        if channel is not None:
            position += f"-c={channel}"
        z = entry.axis("z")
        if z is not None:
            position += f"-z={z}"
        t = self._t(entry)
        try:
            pixels = self._read_pixels(entry)
        except OSError as exc:
            out.append(
                self._problem(axes_name(entry.axes), "unreadable-pixels", str(exc), position, t)
            )
            return
        rgb = pixels.ndim == 3
        out.append(
            DatasetImage(
                unit=unit,
                position=position,
                t=t,
                pixels=pixels,
                axes="CYX" if rgb else "YX",
                completed_at=self._clock(),
                pixel_size_um=self._pixel_size(entry),
                channels=_RGB if rgb else (),
            )
        )

    # -- stacks ------------------------------------------------------------------------

    def _group_key(self, entry: IndexEntry) -> tuple[str, int]:
        return (self._position(entry), self._t(entry))

    def _add_to_group(self, entry: IndexEntry, out: list[DatasetItem]) -> None:
        key = self._group_key(entry)
        if key != self._current_key and self._current_key is not None:
            self._close(self._groups[self._current_key])  # the writer moved on
        self._current_key = key
        group = self._groups.get(key)
        if group is None:
            group = _Group(key, first_of_position=key[0] not in self._expected)
            if group.first_of_position:
                self._expected[key[0]] = 0  # known once this group closes
            self._groups[key] = group
            self._open_groups.append(group)
        elif group.emitted:
            out.append(
                self._problem(
                    axes_name(entry.axes),
                    "late-image",
                    f"index entry {entry.number} ({axes_name(entry.axes)}) came after its "
                    f"stack {key[0]} t={key[1]} was handed out",
                    *key,
                )
            )
            return
        group.members.append(entry)

    def _close(self, group: _Group) -> None:
        if not group.closed and group.first_of_position:
            # A position's first stack says how many images make one: its z x channel
            # grid, not its image count, which an index entry lost to damage would make
            # one short for every later stack.
            entries = group.members + group.bad
            zs = {e.axis("z") for e in entries}
            channels = {e.axis("channel") for e in entries}
            self._expected[group.key[0]] = len(zs) * len(channels)
        group.closed = True

    def _emit_groups(self, out: list[DatasetItem]) -> None:
        still: list[_Group] = []
        emitted = 0
        for group in self._open_groups:
            if emitted >= MAX_STACKS_PER_POLL:
                self._behind = True  # the rest at the next poll: memory stays bounded
                still.append(group)
                continue
            expected = self._expected[group.key[0]]
            if not group.first_of_position and len(group.members) + len(group.bad) >= expected > 0:
                self._close(group)  # as many images as this position's first stack
            if group.closed and len(group.arrived) == len(group.members):
                self._emit_group(group, out)
                emitted += 1
                group.emitted = True
                group.members, group.arrived, group.bad = [], set(), []  # free the entries
            else:
                still.append(group)
        self._open_groups = still

    def _emit_group(self, group: _Group, out: list[DatasetItem]) -> None:
        position, t = group.key
        name = f"{position}/t={t}"
        unit = self._unit(name)
        members = [m for m in group.members if m.number in group.arrived]
        if not members or self._is_done(unit):
            return
        zs = sorted({z for m in members if isinstance(z := m.axis("z"), int)})
        names = [self._channel_name(m) for m in members]
        rank = {n: self._channel_rank(m) for m, n in zip(members, names, strict=True)}
        order = sorted((n for n in rank if n is not None), key=lambda n: rank[n])
        grid: dict[tuple[int | None, str | None], IndexEntry] = {}
        for m, ch in zip(members, names, strict=True):
            z = m.axis("z")
            grid[(z if isinstance(z, int) else None, ch)] = m
        z_keys: list[int | None] = list(zs) if zs else [None]
        c_keys: list[str | None] = list(order) if order else [None]
        first = members[0]
        same = all(
            (m.width, m.height, m.pixel_type) == (first.width, first.height, first.pixel_type)
            for m in members
        )
        if (
            len(grid) != len(z_keys) * len(c_keys)
            or not same
            or any((z, c) not in grid for z in z_keys for c in c_keys)
        ):
            out.append(
                self._problem(
                    name,
                    "irregular-stack",
                    f"stack {position} t={t}: {len(members)} images "
                    f"(z {zs}, channels {order}) do not fill a z x channel grid of one "
                    "image size; use stack = false",
                    position,
                    t,
                )
            )
            return
        try:
            planes = [[self._read_pixels(grid[(z, c)]) for c in c_keys] for z in z_keys]
        except OSError as exc:
            out.append(self._problem(name, "unreadable-pixels", str(exc), position, t))
            return
        rgb = planes[0][0].ndim == 3
        cube = np.stack([np.concatenate(row) if rgb else np.stack(row) for row in planes])
        channels: tuple[str, ...] = (
            tuple(f"{c}-{s}" if c is not None else s for c in c_keys for s in _RGB)
            if rgb
            else tuple(c for c in c_keys if c is not None)
        )
        has_c = rgb or len(c_keys) > 1
        has_z = len(z_keys) > 1
        if not has_c:
            cube = cube[:, 0]
            channels = ()
        if not has_z:
            cube = cube[0]
        axes = ("Z" if has_z else "") + ("C" if has_c else "") + "YX"
        out.append(
            DatasetImage(
                unit=unit,
                position=position,
                t=t,
                pixels=np.ascontiguousarray(cube),
                axes=axes,
                completed_at=self._clock(),
                pixel_size_um=self._pixel_size(first),
                channels=channels,
            )
        )

    def _channel_rank(self, entry: IndexEntry) -> tuple[int, int]:
        """Named channels in the order they first appeared, numbered ones by number."""
        channel = entry.axis("channel")
        if isinstance(channel, str):
            return (0, self._string_channels.index(channel))
        return (1, channel if isinstance(channel, int) else 0)

    # -- the end -----------------------------------------------------------------------

    def _check_finished(self, index_size: int) -> bool:
        last = self._last_arrived
        if (
            last is None
            or self._broken
            or index_size != self._index_pos
            or self._dir is None
            or any(entry.filename != last.filename for entry in self._waiting)
        ):
            self._finish_seen_at = None
            return False
        # the entry again: its metadata length may have been half-written when first read
        start, end = self._last_span
        again = parse_entry(os.pread(self._require_index(), end - start, start), 0, last.number)
        if isinstance(again, tuple) and isinstance(again[0], IndexEntry):
            last = again[0]
        f = self._files[last.filename]
        raw = os.pread(f.fd, 4, last.next_ifd_location)
        size = os.fstat(f.fd).st_size
        ends_here = size == last.metadata_offset + last.metadata_length or (
            last.metadata_length == 0 and size == last.pixel_end
        )
        if raw != b"\0\0\0\0" or not ends_here or self._unreferenced_stack_file(self._dir):
            self._finish_seen_at = None
            return False
        if self._finish_seen_at != index_size:
            self._finish_seen_at = index_size  # confirm on the next poll
            return False
        return True

    def _unreferenced_stack_file(self, folder: Path) -> bool:
        """A stack file no entry points to yet: the writer rolled over to a new file."""
        return any(name.endswith(".tif") and name not in self._files for name in os.listdir(folder))

    def _finish(self, out: list[DatasetItem]) -> None:
        self._finished = True
        for entry in self._waiting:
            f = self._files.get(entry.filename)
            where = (
                f"stack file {entry.filename} missing"
                if f is None
                else f"pixels end at byte {entry.pixel_end}, "
                f"{entry.filename} has {os.fstat(f.fd).st_size}"
            )
            problem = self._problem(
                axes_name(entry.axes),
                "pixels-beyond-file",
                f"index entry {entry.number} ({axes_name(entry.axes)}): {where}",
                self._position(entry),
                self._t(entry),
            )
            out.append(problem)
            if self._stack:
                group = self._groups[self._group_key(entry)]
                group.members.remove(entry)
                group.bad.append(entry)
        self._waiting = []
        if self._stack:
            for group in self._open_groups:
                self._close(group)
            self._emit_groups(out)
