"""Reading one TIFF frame, and telling a complete file from one still being written.

``inspect_tiff`` parses the structure only (no pixels) and raises
``FileIncomplete`` while the file cannot yet be used: empty, not yet a TIFF,
an IFD or a strip past the end of the file, fewer pages than its OME-XML
declares. Whether that is final (truncated for good) is the watcher's call,
from how long the file has been unchanged. ``load_frame`` then reads the pixels
(memory-mapped where tifffile allows) and checks them.

Axes come from the OME-XML when present, else from the config. Position, t
and acquisition come from the OME-XML's ``StageLabel`` and ``MapAnnotation``
(keys ``acquisition``, ``position``, ``t``) when present, else from the path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from livecell.errors import RejectedFrame
from livecell.frames import MAX_T, FrameKey, check_pixels, usable_pixel_size_um

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_CANONICAL_AXES = {"YX": "YX", "ZYX": "ZYX", "CYX": "CYX", "ZCYX": "ZCYX", "CZYX": "ZCYX"}
MAX_PAGES = 10_000
"""Pages of one file, at most: far more than the planes of one time point (a 2.6 s
parse for 50,000 pages stalls every other file behind it)."""
MAX_DESCRIPTION_BYTES = 8 * 2**20
"""The first page's description (the OME-XML), at most: a 42 MB one took 1.1 GB."""
_tifffile_log_lock = threading.Lock()


class FileIncomplete(RejectedFrame):
    """The file is not usable yet; if it stays this way past ``settle_s`` it is rejected."""


@dataclass(frozen=True, slots=True)
class OmeInfo:
    planes: int
    pixel_size_um: float | None
    channels: tuple[str, ...]
    acquisition: str | None
    position: str | None
    t: int | None


@dataclass(frozen=True, slots=True)
class TiffLayout:
    """A complete TIFF's structure: enough to order it and to read it."""

    path: Path
    size_bytes: int
    axes: str
    file_axes: str
    shape: tuple[int, ...]
    dtype: str
    ome: OmeInfo | None

    def key(self, from_path: FrameKey) -> FrameKey:
        """The frame key: OME metadata where it says, the path elsewhere."""
        if self.ome is None:
            return from_path
        return FrameKey(
            acquisition=self.ome.acquisition or from_path.acquisition,
            position=self.ome.position or from_path.position,
            t=from_path.t if self.ome.t is None else self.ome.t,
        )


def inspect_tiff(path: Path, *, default_axes: str) -> TiffLayout:
    """Parse a TIFF's structure without reading pixels.

    Raises ``FileIncomplete`` (maybe still being written) or ``RejectedFrame``
    (complete, but unusable: unsupported or mismatched axes).
    """
    size = _size(path)
    if size == 0:
        raise FileIncomplete("empty_file", "the file has zero bytes")
    with open(path, "rb") as f:
        magic = f.read(4)
    if len(magic) == 4 and magic not in _TIFF_MAGIC:
        raise FileIncomplete("not_tiff", f"not a TIFF file (starts with {magic!r})")
    unusable: RejectedFrame | None = None
    with _tifffile_problems() as problems:
        try:
            with tifffile.TiffFile(path) as tif:
                layout = _layout(tif, path, size, default_axes)
        except FileIncomplete:
            raise
        except RejectedFrame as exc:
            unusable = exc
        except tifffile.TiffFileError as exc:
            raise FileIncomplete("truncated", f"TIFF structure unreadable: {exc}") from None
        except (ValueError, IndexError, KeyError, OSError, EOFError, struct.error) as exc:
            raise FileIncomplete("truncated", f"TIFF structure unreadable: {exc}") from None
    # What tifffile complained about comes first: a half-written file (its OME-XML or
    # later IFDs not there yet) otherwise looks like a complete one with the wrong axes.
    if problems:
        raise FileIncomplete("truncated", f"TIFF structure incomplete: {problems[0]}")
    if unusable is not None:
        raise unusable
    return layout


def load_frame_pixels(layout: TiffLayout, *, memmap: bool) -> np.ndarray:
    """Read (or memory-map) the pixels of an inspected file and check them."""
    if _size(layout.path) != layout.size_bytes:
        raise FileIncomplete("truncated", "the file changed while it was being read")
    stored: np.ndarray | None = None
    if memmap:
        with contextlib.suppress(ValueError, OSError), _tifffile_problems():
            stored = tifffile.memmap(layout.path, series=0, mode="r")
    if stored is None:
        try:
            with _tifffile_problems(), tifffile.TiffFile(layout.path) as tif:
                stored = tif.series[0].asarray()
        except Exception as exc:  # decoders raise anything from zlib.error to RuntimeError
            raise RejectedFrame("decode_error", f"cannot decode pixels: {exc}") from None
    pixels = _to_axes(np.asarray(stored), layout)
    if not pixels.dtype.isnative:
        # Big-endian files (ImageJ writes them) would otherwise reach events and
        # analysis as dtype ">u2" instead of "uint16".
        pixels = pixels.astype(pixels.dtype.newbyteorder("="))
    check_pixels(pixels, layout.axes)
    return pixels


def _to_axes(pixels: np.ndarray, layout: TiffLayout) -> np.ndarray:
    """Drop singleton axes and put Z before C, as ``layout.file_axes`` says."""
    kept = pixels.reshape(tuple(n for n in pixels.shape if n > 1) or pixels.shape)
    if kept.ndim != len(layout.file_axes):
        kept = pixels.reshape(layout.shape)
    if layout.file_axes == "CZYX":
        return kept.transpose(1, 0, 2, 3)
    return kept


def _layout(tif: tifffile.TiffFile, path: Path, size: int, default_axes: str) -> TiffLayout:
    description = tif.pages.first.description
    if len(description) > MAX_DESCRIPTION_BYTES:  # parsing costs ~27x its size, twice
        raise RejectedFrame(
            "bad_metadata",
            f"its image description (OME-XML) is {len(description)} bytes, over "
            f"{MAX_DESCRIPTION_BYTES}",
        )
    for index, page in enumerate(tif.pages):
        if index == MAX_PAGES:  # each page is parsed on the watch thread, one by one
            raise RejectedFrame(
                "too_many_pages", f"over {MAX_PAGES} pages: not one time point of a frame"
            )
        if not isinstance(page, tifffile.TiffPage):
            continue
        ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=False)]
        if not ends or max(ends) > size or 0 in page.databytecounts:
            raise FileIncomplete("truncated", f"page {page.index} has pixel data past the end")
    ome = _parse_ome(tif.ome_metadata) if tif.is_ome and tif.ome_metadata else None
    if ome is not None and len(tif.pages) < ome.planes:
        raise FileIncomplete(
            "truncated", f"{len(tif.pages)} of the {ome.planes} pages its OME-XML declares"
        )
    images = same_size_images(tif.series)
    if ome is not None and images > 1:  # a thumbnail or a label image is smaller, and left
        raise RejectedFrame(
            "axes_unsupported",
            f"{images} images (positions) of one size in one OME-TIFF: livecell takes one "
            "position and time point per file",
        )
    series = tif.series[0]
    shape = tuple(int(n) for n in series.shape)
    if ome is not None:
        file_axes = _ome_axes(series.axes, shape)
    else:
        file_axes = default_axes
        if len(shape) != len(file_axes):
            raise RejectedFrame(
                "axes_mismatch",
                f"the file holds an image of shape {shape} but source.axes is {file_axes!r} "
                "(and the file has no OME metadata to say otherwise)",
            )
    return TiffLayout(
        path=path,
        size_bytes=size,
        axes=_CANONICAL_AXES[file_axes],
        file_axes=file_axes,
        shape=shape,
        dtype=str(series.dtype),
        ome=ome,
    )


def same_size_images(series: list[tifffile.TiffPageSeries]) -> int:
    """How many of a file's image series have the first one's Y x X size and type: more
    than one are positions (or tiles) of one acquisition; a smaller one (a thumbnail, a
    slide label) is no image of it."""
    first = series[0]
    return sum(s.shape[-2:] == first.shape[-2:] and s.dtype == first.dtype for s in series)


def _ome_axes(series_axes: str, shape: tuple[int, ...]) -> str:
    kept = "".join(a for a, n in zip(series_axes, shape, strict=True) if n > 1 or a in "YX")
    if kept not in _CANONICAL_AXES:
        raise RejectedFrame(
            "axes_unsupported",
            f"OME axes {series_axes} with shape {shape}: livecell takes one time point per "
            "file with axes YX, ZYX, CYX or ZCYX",
        )
    return kept


def _ome_count(element: ET.Element, name: str) -> int:
    """A size attribute of the OME-XML (1 where absent), which must be a positive integer."""
    text = element.get(name, "1")
    if not (text.isascii() and text.isdigit() and int(text) > 0):
        raise RejectedFrame("bad_metadata", f"OME {name}={text!r} is not a positive integer")
    return int(text)


def _parse_ome(xml: str) -> OmeInfo | None:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    pixels = _first(root, "Pixels")
    if pixels is None:
        return None
    planes = 1
    for dim in ("SizeZ", "SizeC", "SizeT"):
        planes *= _ome_count(pixels, dim)
    samples = 1
    channel_elements = [e for e in pixels if _local(e.tag) == "Channel"]
    if channel_elements:
        samples = _ome_count(channel_elements[0], "SamplesPerPixel")
    channels = tuple(e.get("Name", "") for e in channel_elements if e.get("Name"))
    size_x = _number(pixels.get("PhysicalSizeX"))
    unit = pixels.get("PhysicalSizeXUnit", "µm")
    pixel_size_um = usable_pixel_size_um(_to_um(size_x, unit) if size_x is not None else None)
    annotations = {
        m.get("K", ""): (m.text or "").strip() for m in root.iter() if _local(m.tag) == "M"
    }
    stage = _first(root, "StageLabel")
    position = (stage.get("Name") if stage is not None else None) or annotations.get("position")
    t_text = annotations.get("t")
    t = int(t_text) if t_text and t_text.isascii() and t_text.isdigit() else None
    if t is not None and t > MAX_T:
        raise RejectedFrame("bad_metadata", f"OME annotation t = {t_text} is over 2**63 - 1")
    return OmeInfo(
        planes=max(1, planes // samples),
        pixel_size_um=pixel_size_um,
        channels=channels,
        acquisition=annotations.get("acquisition") or None,
        position=position or None,
        t=t,
    )


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _to_um(value: float, unit: str) -> float | None:
    scale = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3, "m": 1e6}.get(unit)
    return None if scale is None else value * scale


def _first(root: ET.Element, name: str) -> ET.Element | None:
    return next((e for e in root.iter() if _local(e.tag) == name), None)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        raise FileIncomplete("vanished", "the file was removed") from None


class _ProblemHandler(logging.Handler):
    def __init__(self, problems: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.problems = problems

    def emit(self, record: logging.LogRecord) -> None:
        self.problems.append(record.getMessage())


@contextlib.contextmanager
def _tifffile_problems() -> Iterator[list[str]]:
    """Collect what tifffile logs while parsing: it logs, rather than raises, on truncation."""
    problems: list[str] = []
    handler = _ProblemHandler(problems)
    logger = logging.getLogger("tifffile")
    with _tifffile_log_lock:
        logger.addHandler(handler)
        propagate, logger.propagate = logger.propagate, False
        try:
            yield problems
        finally:
            logger.removeHandler(handler)
            logger.propagate = propagate
