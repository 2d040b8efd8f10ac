"""MMStackReader against Micro-Manager-style OME-TIFF stacks grown page by page on disk."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from mmstack_writer import (
    StackPlan,
    file_name,
    ome_xml,
    page_coords,
    page_pixels,
    write_stack,
)

from livecell.stream.formats._protocol import DatasetImage, DatasetItem, DatasetProblem
from livecell.stream.formats.mmstack import MMStackReader

WRITER = Path(__file__).resolve().parents[2] / "mmstack_writer.py"
PLAN = StackPlan(frames=3, channels=("DAPI", "GFP"), slices=2, pages_per_file=5, shape=(6, 10))


def _grow(
    dst: Path,
    plan: StackPlan,
    *,
    stack: bool,
    order: str = "tifffile",
    piece: int = 40,
    poll_at: frozenset[int] | None = None,
    write_ome: bool = True,
    presize: int = 0,
) -> tuple[MMStackReader, list[DatasetItem]]:
    """Write ``plan`` into ``dst`` in pieces, polling a reader at the pieces in ``poll_at``."""
    reader = MMStackReader(dst / file_name(plan, 0), stack=stack)
    got: list[DatasetItem] = []
    count = 0

    def on_piece() -> None:
        nonlocal count
        if poll_at is None or count in poll_at:
            got.extend(reader.poll())
        count += 1

    write_stack(
        dst, plan, piece=piece, on_piece=on_piece, order=order, write_ome=write_ome,
        presize=presize,
    )  # fmt: skip
    for _ in range(3):
        got.extend(reader.poll())
    return reader, got


def _page_of(unit: str, plan: StackPlan) -> int:
    """Global page number of a per-page unit ``...#<file>/page<n>``."""
    name, page = unit.split("#", 1)[1].split("/page")
    per_file = plan.pages_per_file or plan.n_pages
    split = next(k for k in range(plan.n_pages) if file_name(plan, k) == name)
    return split * per_file + int(page)


def _images(items: list[DatasetItem]) -> list[DatasetImage]:
    return [i for i in items if isinstance(i, DatasetImage)]


def _problems(items: list[DatasetItem]) -> list[DatasetProblem]:
    return [i for i in items if isinstance(i, DatasetProblem)]


@settings(max_examples=80, deadline=None)
@given(
    order=st.sampled_from(
        ["tifffile", "append", "tifffile, file sized ahead", "append, file sized ahead"]
    ),
    bigtiff=st.booleans(),
    layout=st.sampled_from(["stack", "pages", "pages without metadata"]),
    rows_per_strip=st.sampled_from([None, 2]),
    piece=st.integers(7, 300),
    poll_at=st.frozensets(st.integers(0, 400), max_size=120),
)
def test_every_page_exactly_once_never_partial(
    order: str,
    bigtiff: bool,
    layout: str,
    rows_per_strip: int | None,
    piece: int,
    poll_at: frozenset[int],
) -> None:
    """Polled at random points of the growth (mid-IFD, mid-pixels): each page once, whole."""
    stack, mm_metadata = layout == "stack", layout != "pages without metadata"
    plan = StackPlan(
        frames=3, channels=("DAPI", "GFP"), slices=2, pages_per_file=5, shape=(6, 10),
        bigtiff=bigtiff, mm_metadata=mm_metadata, rows_per_strip=rows_per_strip,
    )  # fmt: skip
    presize = 65536 if order.endswith("ahead") else 0
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp)
        reader, got = _grow(
            dst, plan, stack=stack, order=order.split(",")[0], piece=piece, poll_at=poll_at,
            presize=presize,
        )  # fmt: skip
        reader.close()
        assert reader.finished
        assert _problems(got) == []
        units = [i.unit for i in got]
        assert len(units) == len(set(units))
        files = [dst / file_name(plan, k) for k in range(3)]
        finished = [tifffile.TiffFile(f) for f in files]
        try:
            if stack:
                assert [(i.position, i.t) for i in got] == [("Pos0", t) for t in range(3)]
                for image in _images(got):
                    assert image.axes == "ZCYX"
                    assert image.channels == ("DAPI", "GFP")
                    assert image.pixel_size_um == pytest.approx(0.325)
                    for g, (t, z, c) in enumerate(page_coords(plan)):
                        if t == image.t:
                            page = finished[g // 5].pages[g % 5].asarray()
                            np.testing.assert_array_equal(image.pixels[z, c], page)
            else:
                assert sorted(_page_of(u, plan) for u in units) == list(range(plan.n_pages))
                for image in _images(got):
                    g = _page_of(image.unit, plan)
                    t, z, c = page_coords(plan)[g]
                    assert image.axes == "YX"
                    if mm_metadata:
                        assert image.t == t
                        assert image.position == f"Pos0-c={plan.channels[c]}-z={z}"
                    assert image.pixels.dtype == np.uint16
                    assert image.pixels.flags.c_contiguous
                    page = finished[g // 5].pages[g % 5].asarray()
                    np.testing.assert_array_equal(image.pixels, page)
                    np.testing.assert_array_equal(image.pixels, page_pixels(g, plan.shape))
        finally:
            for tf in finished:
                tf.close()


@pytest.mark.parametrize("order", ["tifffile", "append"])
@pytest.mark.parametrize("mm_metadata", [True, False])
def test_polled_after_every_byte(tmp_path: Path, order: str, mm_metadata: bool) -> None:
    """Torn IFD entries, links, strip tables and JSON are all seen; none is taken for a page."""
    plan = StackPlan(
        frames=2, channels=("A", "B"), pages_per_file=3, mm_metadata=mm_metadata,
        shape=(6, 10), rows_per_strip=2,
    )  # fmt: skip
    reader, got = _grow(tmp_path, plan, stack=False, order=order, piece=1)
    assert _problems(got) == []
    assert sorted(_page_of(i.unit, plan) for i in got) == list(range(plan.n_pages))
    for image in _images(got):
        np.testing.assert_array_equal(
            image.pixels, page_pixels(_page_of(image.unit, plan), plan.shape)
        )
    assert reader.finished


def test_split_followed_and_finished_only_when_ome_xml_appears(tmp_path: Path) -> None:
    reader, got = _grow(tmp_path, PLAN, stack=False, write_ome=False)
    assert len(_images(got)) == PLAN.n_pages  # all three files, the split followed
    assert {i.unit.split("#")[1].split("/")[0] for i in got} == {
        file_name(PLAN, k) for k in range(3)
    }
    assert not reader.finished
    assert reader.poll() == []
    files = [file_name(PLAN, k) for k in range(3)]
    tifffile.tiffcomment(tmp_path / files[0], ome_xml(PLAN, files))
    assert reader.poll() == []
    assert reader.finished


def test_last_group_waits_for_size_or_finish(tmp_path: Path) -> None:
    """t=0 completes when the writer moves on; later ones at the first group's size."""
    plan = StackPlan(frames=2, channels=("A",), slices=3, shape=(4, 5))
    reader = MMStackReader(tmp_path / file_name(plan, 0))
    seen: list[tuple[int, int]] = []  # (pages written, t emitted)
    written = 0

    def on_page_piece() -> None:
        for item in reader.poll():
            assert isinstance(item, DatasetImage)
            seen.append((written, item.t))

    one = StackPlan(frames=1, channels=("A",), slices=3, shape=(4, 5))
    write_stack(tmp_path, one, piece=10_000, on_piece=on_page_piece, write_ome=False)
    written = 3
    assert reader.poll() == []  # size of a group unknown until the writer moves on
    tifffile.tiffcomment(tmp_path / file_name(one, 0), ome_xml(one, [file_name(one, 0)]))
    last = reader.poll()
    assert [(i.t, i.axes, i.pixels.shape) for i in _images(last)] == [(0, "ZYX", (3, 4, 5))]
    assert reader.finished
    # with a second time point, t=0 is out as soon as t=1 starts, t=1 once it has 3 slices
    dst = tmp_path / "two"
    reader2, got = _grow(dst, plan, stack=True, piece=10_000, write_ome=False)
    assert [i.t for i in _images(got)] == [0, 1]
    assert not reader2.finished
    reader2.close()


def test_is_done_skips_and_a_restart_resumes(tmp_path: Path) -> None:
    plan = StackPlan(frames=4, channels=("A",), shape=(4, 5), pages_per_file=3)
    write_stack(tmp_path, plan, write_ome=False)
    first = MMStackReader(tmp_path / file_name(plan, 0), stack=False)
    done = {i.unit for i in first.poll()[:2]}
    first.close()
    asked: list[str] = []

    def is_done(unit: str) -> bool:
        asked.append(unit)
        return unit in done

    again = MMStackReader(tmp_path / file_name(plan, 0), stack=False, is_done=is_done)
    rest = again.poll()
    assert {i.unit for i in rest}.isdisjoint(done)
    assert len(rest) + len(done) == plan.n_pages
    assert set(asked) >= done
    grouped = MMStackReader(tmp_path / file_name(plan, 0), is_done=lambda u: u.endswith("/t1"))
    # t=3 does not wait for more: its position's first group had one image
    assert [i.t for i in grouped.poll()] == [0, 2, 3]
    grouped.close()
    again.close()


def test_damaged_page_reported_while_later_pages_are_read(tmp_path: Path) -> None:
    plan = StackPlan(
        frames=3, channels=("A", "B"), pages_per_file=4, shape=(4, 5), damaged=frozenset({2})
    )
    reader, got = _grow(tmp_path, plan, stack=False)
    assert reader.finished
    problems = _problems(got)
    assert [(p.unit.split("#")[1], p.reason) for p in problems] == [
        (f"{file_name(plan, 0)}/page2", "bad-metadata")
    ]
    assert "51123" in problems[0].detail
    assert sorted(_page_of(i.unit, plan) for i in _images(got)) == [0, 1, 3, 4, 5]
    grouped, got = _grow(tmp_path / "grouped", plan, stack=True)
    assert [(p.unit.split("#")[1], p.reason) for p in _problems(got)] == [
        (f"{file_name(plan, 0)}/page2", "bad-metadata"),
        ("Pos0/t1", "incomplete-stack"),
    ]
    assert [(i.t, i.axes) for i in _images(got)] == [(0, "CYX"), (2, "CYX")]
    assert grouped.finished


@pytest.mark.parametrize("damaged", [0, 1, 3])  # first, inside and last page of t=0
def test_a_damaged_page_in_the_first_stack_spoils_that_stack_only(
    tmp_path: Path, damaged: int
) -> None:
    """The first stack of a position sets how many pages make one; a damaged page among
    them is one of them (else every later stack closed one page short)."""
    plan = StackPlan(
        frames=4, channels=("A", "B"), slices=2, shape=(4, 5), damaged=frozenset({damaged})
    )
    reader, got = _grow(tmp_path, plan, stack=True)
    assert [p.reason for p in _problems(got)] == ["bad-metadata", "incomplete-stack"]
    assert [(i.t, i.axes) for i in _images(got)] == [(1, "ZCYX"), (2, "ZCYX"), (3, "ZCYX")]
    assert reader.finished


def test_every_compressed_page_is_reported_the_last_one_too(tmp_path: Path) -> None:
    """Compression is a property of a whole page, not of one still being written: the
    last page was never reported, waiting for a writer that had finished."""
    path = tmp_path / "w_MMStack_Pos0.ome.tif"
    with tifffile.TiffWriter(path) as tif:
        for t in range(3):
            meta = json.dumps({"FrameIndex": t, "ChannelIndex": 0, "SliceIndex": 0})
            tif.write(
                np.zeros((8, 10), np.uint16),
                compression="zlib",
                photometric="minisblack",
                extratags=[(51123, "s", 0, meta, True)],
            )
    reader = MMStackReader(path, stack=False)
    items = [item for _ in range(3) for item in reader.poll()]
    assert [p.reason for p in _problems(items)] == ["unsupported-compression"] * 3
    assert "moved on" not in _problems(items)[2].detail
    reader.close()


def test_truncated_page_reported_once_the_writer_moved_on(tmp_path: Path) -> None:
    plan = StackPlan(frames=4, channels=("A",), shape=(8, 8), pages_per_file=2)
    write_stack(tmp_path, plan, write_ome=False)
    first = tmp_path / file_name(plan, 0)
    with tifffile.TiffFile(first) as tf:
        cut = tf.pages[1].dataoffsets[0] + 10  # page 1's pixels cut short
    with open(first, "r+b") as fh:
        fh.truncate(cut)
    reader = MMStackReader(first, stack=False)
    got = reader.poll()
    assert [(p.unit.split("#")[1], p.reason) for p in _problems(got)] == [
        (f"{file_name(plan, 0)}/page1", "incomplete-page")
    ]
    assert [i.t for i in _images(got)] == [0, 2, 3]
    reader.close()


def test_pages_without_mm_metadata(tmp_path: Path) -> None:
    plan = StackPlan(frames=2, channels=("A", "B"), slices=2, shape=(4, 5), mm_metadata=False)
    reader, live = _grow(tmp_path, plan, stack=True, write_ome=False)
    # live, nothing says c or z: t is the page number, the position the file name's
    assert _problems(live) == []
    assert [(i.position, i.t, i.axes) for i in _images(live)] == [
        ("Pos0", g, "YX") for g in range(8)
    ]
    tifffile.tiffcomment(tmp_path / file_name(plan, 0), ome_xml(plan, [file_name(plan, 0)]))
    assert reader.poll() == []
    assert reader.finished
    after = MMStackReader(tmp_path / file_name(plan, 0)).poll()  # the OME-XML maps them
    assert [(i.t, i.axes, i.channels) for i in _images(after)] == [
        (0, "ZCYX", ("A", "B")),
        (1, "ZCYX", ("A", "B")),
    ]
    image = _images(after)[1]
    assert image.pixel_size_um == pytest.approx(0.325)
    np.testing.assert_array_equal(image.pixels[1, 0], page_pixels(6, plan.shape))


def test_not_a_tiff_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    path = tmp_path / "acq_MMStack_Pos0.ome.tif"
    path.write_bytes(b"this is no tiff at all")
    reader = MMStackReader(path)
    got = reader.poll()
    assert [(p.reason, p.unit) for p in _problems(got)] == [
        ("not-a-tiff", f"{path}#{path.name}/header")
    ]
    assert reader.poll() == []
    reader.close()


def test_missing_file_waits(tmp_path: Path) -> None:
    reader = MMStackReader(tmp_path / "acq_MMStack_Pos0.ome.tif")
    assert reader.poll() == []
    assert not reader.finished
    reader.close()


def test_writer_script(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(WRITER), str(tmp_path), "--frames", "3", "--pages-per-file", "2",
         "--pause", "0.01", "--channels", "A,B", "--size", "4", "6"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    first = Path(proc.stdout.splitlines()[0])
    assert proc.stdout.splitlines()[-1] == "done"
    assert first == tmp_path / "acq_MMStack_Pos0.ome.tif"
    reader = MMStackReader(first, stack=False)
    got = reader.poll()
    assert len(_images(got)) == 6
    assert reader.finished
    for image in _images(got):
        g = _page_of(image.unit, StackPlan(frames=3, channels=("A", "B"), pages_per_file=2))
        np.testing.assert_array_equal(image.pixels, page_pixels(g, (4, 6)))
