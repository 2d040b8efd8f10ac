"""Reading one TIFF: complete vs still being written vs unusable, axes and OME metadata."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from livecell.errors import RejectedFrame
from livecell.frames import FrameKey
from livecell.stream.tiff import (
    MAX_DESCRIPTION_BYTES,
    MAX_PAGES,
    FileIncomplete,
    inspect_tiff,
    load_frame_pixels,
)

STACK = np.arange(3 * 2 * 8 * 8, dtype=np.uint16).reshape(3, 2, 8, 8)


def tiff_bytes(pixels: np.ndarray, **kwargs: Any) -> bytes:
    kwargs.setdefault("ome", False)
    kwargs.setdefault("photometric", "minisblack")
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, pixels, **kwargs)
    return buffer.getvalue()


def ome_bytes(pixels: np.ndarray, axes: str, **metadata: Any) -> bytes:
    return tiff_bytes(pixels, ome=True, metadata={"axes": axes, **metadata})


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def load(path: Path, default_axes: str = "YX", *, memmap: bool = True) -> np.ndarray:
    return load_frame_pixels(inspect_tiff(path, default_axes=default_axes), memmap=memmap)


# --- complete files ------------------------------------------------------------------------


@pytest.mark.parametrize("memmap", [True, False], ids=["memmap", "read"])
def test_complete_2d_tiff_reads_back_its_pixels(tmp_path: Path, memmap: bool) -> None:
    pixels = np.arange(64 * 48, dtype=np.uint16).reshape(64, 48)
    path = write(tmp_path / "img_0001.tif", tiff_bytes(pixels, rowsperstrip=8))

    layout = inspect_tiff(path, default_axes="YX")
    assert (layout.shape, layout.axes, layout.dtype, layout.ome) == ((64, 48), "YX", "uint16", None)
    assert layout.size_bytes == path.stat().st_size
    loaded = load_frame_pixels(layout, memmap=memmap)
    np.testing.assert_array_equal(loaded, pixels)


@pytest.mark.parametrize(
    ("options", "dtype"),
    [
        ({"compression": "zlib"}, "uint16"),
        ({"byteorder": ">"}, "uint16"),  # ImageJ writes big-endian files
        ({"bigtiff": True}, "uint8"),
        ({}, "float32"),
    ],
    ids=["zlib", "big_endian", "bigtiff", "float32"],
)
def test_encodings_load_as_native_arrays(
    tmp_path: Path, options: dict[str, Any], dtype: str
) -> None:
    pixels = (np.arange(32 * 32) % 251).reshape(32, 32).astype(dtype)
    path = write(tmp_path / "img_0001.tif", tiff_bytes(pixels, **options))

    loaded = load(path)
    assert str(loaded.dtype) == dtype, "events report the dtype as str(pixels.dtype)"
    assert loaded.dtype.isnative
    np.testing.assert_array_equal(loaded, pixels)


def test_multipage_stacks_use_the_config_axes(tmp_path: Path) -> None:
    shaped = write(tmp_path / "shaped.tif", tiff_bytes(STACK.reshape(6, 8, 8)))
    np.testing.assert_array_equal(load(shaped, "ZYX"), STACK.reshape(6, 8, 8))
    np.testing.assert_array_equal(
        load(write(tmp_path / "zc.tif", tiff_bytes(STACK)), "ZCYX"), STACK
    )

    pages = tmp_path / "pages.tif"  # appended plane by plane, no metadata at all
    with tifffile.TiffWriter(pages) as writer:
        for plane in STACK.reshape(6, 8, 8):
            writer.write(plane, metadata=None, contiguous=False)
    layout = inspect_tiff(pages, default_axes="ZYX")
    assert (layout.shape, layout.axes) == ((6, 8, 8), "ZYX")
    np.testing.assert_array_equal(load_frame_pixels(layout, memmap=True), STACK.reshape(6, 8, 8))


# --- axes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "default_axes"),
    [((3, 16, 16), "YX"), ((16, 16), "ZYX"), ((2, 3, 16, 16), "ZYX"), ((16, 16, 3), "YX")],
    ids=["3d_as_YX", "2d_as_ZYX", "4d_as_ZYX", "rgb_as_YX"],
)
def test_axes_that_do_not_match_the_config_are_final(
    tmp_path: Path, shape: tuple[int, ...], default_axes: str
) -> None:
    photometric = "rgb" if shape[-1] == 3 else "minisblack"
    data = tiff_bytes(np.ones(shape, np.uint16), photometric=photometric)
    path = write(tmp_path / "img.tif", data)

    with pytest.raises(RejectedFrame) as caught:
        inspect_tiff(path, default_axes=default_axes)
    assert caught.value.reason == "axes_mismatch"
    assert not isinstance(caught.value, FileIncomplete), "waiting will not fix wrong axes"
    assert default_axes in caught.value.detail


@pytest.mark.parametrize(
    ("pixels", "ome_axes", "axes", "expected"),
    [
        (STACK[:, 0], "ZYX", "ZYX", STACK[:, 0]),
        (STACK[0], "CYX", "CYX", STACK[0]),
        (STACK, "ZCYX", "ZCYX", STACK),
        (STACK.transpose(1, 0, 2, 3), "CZYX", "ZCYX", STACK),  # Z goes before C
        (STACK[:1, 0], "ZYX", "YX", STACK[0, 0]),  # a single plane is a 2D image
    ],
    ids=["ZYX", "CYX", "ZCYX", "CZYX", "Z1"],
)
@pytest.mark.parametrize("config_axes", ["YX", "ZCYX"])
def test_ome_axes_win_over_the_config(
    tmp_path: Path,
    pixels: np.ndarray,
    ome_axes: str,
    axes: str,
    expected: np.ndarray,
    config_axes: str,
) -> None:
    path = write(tmp_path / "img.ome.tif", ome_bytes(pixels, ome_axes))

    layout = inspect_tiff(path, default_axes=config_axes)
    assert layout.axes == axes
    assert layout.ome is not None
    loaded = load_frame_pixels(layout, memmap=True)
    assert loaded.shape == expected.shape
    np.testing.assert_array_equal(loaded, expected)


def test_ome_with_more_than_one_time_point_is_unsupported(tmp_path: Path) -> None:
    path = write(tmp_path / "tz.ome.tif", ome_bytes(STACK.reshape(3, 2, 8, 8), "TZYX"))

    with pytest.raises(RejectedFrame) as caught:
        inspect_tiff(path, default_axes="YX")
    assert caught.value.reason == "axes_unsupported"
    assert not isinstance(caught.value, FileIncomplete)


def test_an_ome_tiff_of_several_positions_is_refused_not_cut_to_its_first(
    tmp_path: Path,
) -> None:
    path = tmp_path / "two.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        for name in ("posA", "posB"):
            tif.write(STACK[0, 0], metadata={"axes": "YX", "Name": name})
    with pytest.raises(RejectedFrame, match="2 images \\(positions\\) of one size") as caught:
        inspect_tiff(path, default_axes="YX")
    assert caught.value.reason == "axes_unsupported"
    assert not isinstance(caught.value, FileIncomplete)


def test_an_ome_tiff_with_a_thumbnail_image_is_read_as_its_image(tmp_path: Path) -> None:
    """tifffile's own example stores a thumbnail as a second, smaller OME image."""
    path = tmp_path / "thumb.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(STACK[0, 0], metadata={"axes": "YX"})
        tif.write(STACK[0, 0, :4, :4], metadata={"axes": "YX", "Name": "thumbnail"})
    np.testing.assert_array_equal(load(path), STACK[0, 0])


@pytest.mark.parametrize("size_z", ["one", "0", "-2"])
def test_an_ome_size_that_is_no_count_is_bad_metadata_not_truncated(
    tmp_path: Path, size_z: str
) -> None:
    path = write(tmp_path / "z.ome.tif", ome_bytes(STACK[0, 0], "YX"))
    tifffile.tiffcomment(path, tifffile.tiffcomment(path).replace('SizeZ="1"', f'SizeZ="{size_z}"'))
    with pytest.raises(RejectedFrame, match=f"SizeZ='{size_z}'") as caught:
        inspect_tiff(path, default_axes="YX")
    assert caught.value.reason == "bad_metadata"
    assert not isinstance(caught.value, FileIncomplete)


def test_complex_or_boolean_pixels_are_refused_naming_the_dtype(tmp_path: Path) -> None:
    values = (STACK[0, 0] + 1j).astype(np.complex64)
    with pytest.raises(RejectedFrame, match="complex64 pixels") as caught:
        load(write(tmp_path / "c.tif", tiff_bytes(values)))
    assert caught.value.reason == "bad_dtype"
    with pytest.raises(RejectedFrame, match="bool pixels"):
        load(write(tmp_path / "b.tif", tiff_bytes(STACK[0, 0] > 3)))


def test_ome_metadata_gives_key_pixel_size_and_channels(tmp_path: Path) -> None:
    data = ome_bytes(
        STACK[0],
        "CYX",
        PhysicalSizeX=0.325,
        PhysicalSizeY=0.325,
        Channel={"Name": ["DAPI", "GFP"]},
        MapAnnotation={"acquisition": "run42", "position": "PosX", "t": "7"},
    )
    layout = inspect_tiff(write(tmp_path / "img.ome.tif", data), default_axes="YX")

    assert layout.ome is not None
    assert layout.ome.pixel_size_um == pytest.approx(0.325)
    assert layout.ome.channels == ("DAPI", "GFP")
    from_path = FrameKey(acquisition="incoming", position="Pos0", t=1)
    assert layout.key(from_path) == FrameKey(acquisition="run42", position="PosX", t=7)


def test_ome_without_keys_falls_back_to_the_path(tmp_path: Path) -> None:
    layout = inspect_tiff(
        write(tmp_path / "a.ome.tif", ome_bytes(STACK[0, 0], "YX")), default_axes="YX"
    )
    from_path = FrameKey(acquisition="incoming", position="Pos0", t=1)
    assert layout.key(from_path) == from_path

    partial = ome_bytes(STACK[0, 0], "YX", MapAnnotation={"t": "9"})
    layout = inspect_tiff(write(tmp_path / "b.ome.tif", partial), default_axes="YX")
    assert layout.key(from_path) == FrameKey(acquisition="incoming", position="Pos0", t=9)


# --- incomplete and unusable files ---------------------------------------------------------


def test_empty_file_is_incomplete(tmp_path: Path) -> None:
    with pytest.raises(FileIncomplete) as caught:
        inspect_tiff(write(tmp_path / "empty.tif", b""), default_axes="YX")
    assert caught.value.reason == "empty_file"


@pytest.mark.parametrize(
    "data",
    [b"hello, this is a text file\n", b"\x89PNG\r\n\x1a\n" + bytes(100), b"{}"],
    ids=["text", "png", "short"],
)
def test_not_a_tiff(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(FileIncomplete) as caught:
        inspect_tiff(write(tmp_path / "notes.tif", data), default_axes="YX")
    assert caught.value.reason in {"not_tiff", "truncated"}
    if len(data) >= 4:
        assert caught.value.reason == "not_tiff"


def test_missing_file_is_incomplete(tmp_path: Path) -> None:
    with pytest.raises(FileIncomplete) as caught:
        inspect_tiff(tmp_path / "gone.tif", default_axes="YX")
    assert caught.value.reason == "vanished"


def test_truncated_mid_strip(tmp_path: Path) -> None:
    data = tiff_bytes(np.ones((64, 64), np.uint16), rowsperstrip=8)
    path = write(tmp_path / "cut.tif", data[: len(data) * 3 // 5 + 7])

    with pytest.raises(FileIncomplete) as caught:
        inspect_tiff(path, default_axes="YX")
    assert caught.value.reason == "truncated"


def _ome_with_missing_pages(planes_declared: int, planes_written: int) -> bytes:
    """An OME-TIFF whose OME-XML declares ``planes_declared`` planes, as a writer that
    puts the OME-XML in the first page and appends pages leaves it half-way."""
    full = ome_bytes(np.zeros((planes_declared, 8, 8), np.uint16), "ZYX")
    with tifffile.TiffFile(io.BytesIO(full)) as tif:
        xml = tif.ome_metadata
    buffer = io.BytesIO()
    with tifffile.TiffWriter(buffer) as writer:
        for z in range(planes_written):
            plane = np.full((8, 8), z, np.uint16)
            writer.write(
                plane, description=xml if z == 0 else None, metadata=None, contiguous=False
            )
    return buffer.getvalue()


def test_ome_with_missing_pages_is_incomplete(tmp_path: Path) -> None:
    path = write(tmp_path / "img.ome.tif", _ome_with_missing_pages(6, 2))
    with pytest.raises(FileIncomplete) as caught:
        inspect_tiff(path, default_axes="ZYX")
    assert caught.value.reason == "truncated"

    write(path, _ome_with_missing_pages(6, 6))  # the writer finished
    layout = inspect_tiff(path, default_axes="YX")
    assert (layout.shape, layout.axes) == ((6, 8, 8), "ZYX")
    np.testing.assert_array_equal(
        load_frame_pixels(layout, memmap=True)[:, 0, 0], np.arange(6, dtype=np.uint16)
    )


def test_all_nan_float_image_is_rejected(tmp_path: Path) -> None:
    nan = write(tmp_path / "nan.tif", tiff_bytes(np.full((8, 8), np.nan, np.float32)))
    with pytest.raises(RejectedFrame) as caught:
        load(nan)
    assert caught.value.reason == "all_nan"

    almost = np.full((8, 8), np.nan, np.float32)
    almost[3, 4] = 1.5
    np.testing.assert_array_equal(load(write(tmp_path / "ok.tif", tiff_bytes(almost))), almost)


def test_file_changed_after_inspection_is_incomplete(tmp_path: Path) -> None:
    data = tiff_bytes(np.ones((8, 8), np.uint16))
    path = write(tmp_path / "img.tif", data)
    layout = inspect_tiff(path, default_axes="YX")
    with open(path, "ab") as f:
        f.write(b"\0" * 16)  # the writer appended after we looked
    with pytest.raises(FileIncomplete):
        load_frame_pixels(layout, memmap=True)


# --- every prefix of a file, as a writer leaves it on the way ------------------------------

PREFIX_CASES = {
    "plain": (tiff_bytes(STACK[0, 0]), "YX", STACK[0, 0]),
    "strips": (tiff_bytes(STACK.reshape(24, 16), rowsperstrip=2), "YX", STACK.reshape(24, 16)),
    "zlib": (tiff_bytes(STACK.reshape(24, 16), compression="zlib"), "YX", STACK.reshape(24, 16)),
    "bigtiff": (tiff_bytes(STACK[0, 0], bigtiff=True), "YX", STACK[0, 0]),
    "shaped_zyx": (tiff_bytes(STACK.reshape(6, 8, 8)), "ZYX", STACK.reshape(6, 8, 8)),
    "ome_zcyx_as_zyx": (ome_bytes(STACK, "ZCYX"), "ZYX", STACK),
    "ome_zyx_as_yx": (ome_bytes(STACK.reshape(6, 8, 8), "ZYX"), "YX", STACK.reshape(6, 8, 8)),
}


@pytest.mark.parametrize("case", list(PREFIX_CASES))
def test_no_prefix_of_a_file_is_read_as_a_different_image(tmp_path: Path, case: str) -> None:
    """Every strict prefix either waits (FileIncomplete) or already holds the whole image.

    (tifffile puts some IFDs after the pixel data: a file cut in its last IFD can
    still hold every pixel; reading it then gives exactly the final image.)
    """
    data, default_axes, expected = PREFIX_CASES[case]
    path = tmp_path / "growing.tif"
    whole_prefixes = 0
    # Every cut through the header, first IFD and the file's tail; every 3rd elsewhere.
    cuts = [n for n in range(len(data)) if n < 512 or n > len(data) - 128 or n % 3 == 0]
    for n in cuts:
        path.write_bytes(data[:n])
        try:
            layout = inspect_tiff(path, default_axes=default_axes)
        except FileIncomplete:
            continue
        pixels = load_frame_pixels(layout, memmap=False)
        assert pixels.shape == expected.shape, f"prefix of {n} bytes read as {pixels.shape}"
        np.testing.assert_array_equal(pixels, expected)
        whole_prefixes += 1
    assert whole_prefixes < 64, "only the last few bytes of a file may be missing"
    path.write_bytes(data)
    np.testing.assert_array_equal(load(path, default_axes), expected)


def test_a_file_of_more_pages_than_any_time_point_is_rejected_before_they_are_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pages_0001.tif"
    with tifffile.TiffWriter(path) as writer:
        for _ in range(MAX_PAGES + 1):
            writer.write(np.zeros((1, 1), np.uint8), contiguous=True, photometric="minisblack")
    with pytest.raises(RejectedFrame) as caught:
        inspect_tiff(path, default_axes="ZYX")
    assert caught.value.reason == "too_many_pages"


def test_a_description_past_the_limit_is_rejected_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "huge_0001.ome.tif"
    description = "<?xml version='1.0'?><OME>" + " " * MAX_DESCRIPTION_BYTES + "</OME>"
    tifffile.imwrite(path, np.zeros((4, 4), np.uint16), description=description, metadata=None)
    with pytest.raises(RejectedFrame) as caught:
        inspect_tiff(path, default_axes="YX")
    assert caught.value.reason == "bad_metadata"
    assert "over 8388608" in caught.value.detail
