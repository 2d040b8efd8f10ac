"""TCFReader on TCF files grown time point by time point, with polls in between.

The TCF files here are synthetic: built by ``tests/tcf_writer.py`` per the layout the public
TCFile project documents (``docs/structure_TCF.md``), volumes stored as uint16 RI x 1e4 (or
float32 RI), not recorded on a Tomocube instrument.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py  # type: ignore[import-untyped]
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tcf_writer import SHAPE, add_time_point, create_tcf, synthetic_ri

from livecell.stream.formats._protocol import DatasetImage, DatasetItem, DatasetProblem
from livecell.stream.formats.tcf import TCFReader

WRITER = Path(__file__).resolve().parents[2] / "tcf_writer.py"
QUANTUM = 0.5e-4 + 1e-6  # uint16 RI x 1e4 rounds to the nearest 1e-4


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def polls(reader: TCFReader, n: int = 2) -> list[DatasetItem]:
    """Poll ``n`` times: the reader opens the file once it is unchanged since the last poll."""
    items: list[DatasetItem] = []
    for _ in range(n):
        items += reader.poll()
    return items


def images(items: list[DatasetItem]) -> list[DatasetImage]:
    assert all(isinstance(item, DatasetImage) for item in items), items
    return [item for item in items if isinstance(item, DatasetImage)]


def expected(t: int, view: str) -> np.ndarray:
    ri = synthetic_ri(t)
    return ri.max(axis=0) if view == "mip" else ri


@pytest.mark.parametrize("kind", ["uint16", "float32"])
@pytest.mark.parametrize("view", ["mip", "volume"])
def test_every_time_point_once_with_its_ri(tmp_path: Path, view: str, kind: str) -> None:
    path = tmp_path / "cells.TCF"
    create_tcf(path, kind="float32" if kind == "float32" else "uint16")
    clock = Clock()
    reader = TCFReader(path, clock=clock, view="mip" if view == "mip" else "volume")
    seen: list[DatasetImage] = []
    for t in range(4):
        add_time_point(path, t, slices=3)  # half the volume on disk, file closed
        assert polls(reader, 3) == [], "a half-written time point was handed out"
        clock.now += 1
        add_time_point(path, t)
        got = images(polls(reader))
        assert [image.t for image in got] == [t]
        seen += got
    assert polls(reader) == []
    for image in seen:
        assert image.unit == f"{path}#{'2DMIP' if view == 'mip' else '3D'}/{image.t:06d}"
        assert image.position == "cells"
        assert image.axes == ("YX" if view == "mip" else "ZYX")
        assert image.pixels.dtype == np.float32
        assert image.pixel_size_um == pytest.approx(0.16)
        assert image.completed_at == 1000.0 + image.t + 1
        want = expected(image.t, view)
        assert image.pixels.shape == want.shape
        tolerance = QUANTUM if kind == "uint16" else 1e-7
        np.testing.assert_allclose(image.pixels, want, rtol=0, atol=tolerance)
        assert float(image.pixels.min()) > 1.33
        assert float(image.pixels.max()) < 1.40
    assert len({image.unit for image in seen}) == 4


def test_mip_computed_from_the_volume_when_the_file_has_none(tmp_path: Path) -> None:
    path = tmp_path / "nomip.TCF"
    create_tcf(path, mip=False)
    for t in range(3):
        add_time_point(path, t)
    reader = TCFReader(path, position="well-A1")
    got = images(polls(reader))
    assert [image.t for image in got] == [0, 1, 2]
    for image in got:
        assert image.position == "well-A1"
        assert image.axes == "YX"
        np.testing.assert_allclose(image.pixels, expected(image.t, "mip"), atol=QUANTUM)


@settings(max_examples=15, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(1, 5), st.integers(0, 3)), min_size=1, max_size=14),
    view=st.sampled_from(["mip", "volume"]),
)
def test_random_polls_during_growth_never_give_partial_time_points(
    steps: list[tuple[int, int]], view: str
) -> None:
    """Write in random slice batches with random polls between: each time point once, whole."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grow.TCF"
        create_tcf(path)
        reader = TCFReader(path, view="mip" if view == "mip" else "volume")
        got: list[DatasetImage] = []
        t, written = 0, 0
        for slices, n_polls in steps:
            add_time_point(path, t, slices=slices)  # the last slices: MIP, attributes too
            written += slices
            if written >= SHAPE[0]:
                t, written = t + 1, 0
            got += images(polls(reader, n_polls))
            assert [image.t for image in got] == list(range(len(got)))
            assert len(got) <= t
        got += images(polls(reader, 2))
        assert [image.t for image in got] == list(range(t))
        for image in got:
            np.testing.assert_allclose(image.pixels, expected(image.t, view), atol=QUANTUM)


def test_follows_the_writer_script_while_it_writes(tmp_path: Path) -> None:
    """Polls race a real writer process (the script the end-to-end tests use)."""
    path = tmp_path / "live.TCF"
    frames = 6
    writer = subprocess.Popen(
        [sys.executable, str(WRITER), str(path), "--frames", str(frames), "--pause", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reader = TCFReader(path, view="volume")
    got: list[DatasetImage] = []
    deadline = time.monotonic() + 30
    while writer.poll() is None and time.monotonic() < deadline:
        got += images(reader.poll())
        time.sleep(0.002)
    out, err = writer.communicate(timeout=30)
    assert writer.returncode == 0, err
    assert f"wrote {frames} time points" in out
    got += images(polls(reader))
    assert [image.t for image in got] == list(range(frames))
    for image in got:
        np.testing.assert_allclose(image.pixels, synthetic_ri(image.t), atol=QUANTUM)


def test_damaged_time_points_are_reported_and_the_rest_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "damaged.TCF"
    create_tcf(path)
    reader = TCFReader(path, view="mip")
    add_time_point(path, 0)
    add_time_point(path, 1, volume=np.full((8, 16, 32), 1.35, np.float32))  # wrong shape
    add_time_point(path, 2, slices=2)  # abandoned half-written
    items = polls(reader, 3)  # a problem is reported once a second scan agrees
    assert [item.t for item in items] == [0, 1]
    bad = items[1]
    assert isinstance(bad, DatasetProblem)
    assert bad.reason == "bad-shape"
    assert "(8, 16, 32)" in bad.detail
    assert "(8, 32, 32)" in bad.detail
    assert bad.unit == f"{path}#2DMIP/000001"
    add_time_point(path, 3)  # the writer moves on: time point 2 will never be completed
    add_time_point(path, 4)
    items = polls(reader, 3)
    assert [item.t for item in items] == [2, 3, 4]
    lost = items[0]
    assert isinstance(lost, DatasetProblem)
    assert lost.reason == "incomplete-time-point"
    assert "moved on" in lost.detail
    for image in images(items[1:]):
        np.testing.assert_allclose(image.pixels, expected(image.t, "mip"), atol=QUANTUM)


def test_a_deprecated_tiled_time_point_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "tiled.TCF"
    create_tcf(path, mip=False)
    add_time_point(path, 0)
    with h5py.File(path, "a") as f:
        f["Data/3D"].create_group("000001").create_dataset("TILE_0000", data=np.zeros((2, 2)))
    add_time_point(path, 2)
    items = polls(TCFReader(path, view="volume"), 3)
    assert [type(item).__name__ for item in items] == [
        "DatasetImage",
        "DatasetProblem",
        "DatasetImage",
    ]
    assert isinstance(items[1], DatasetProblem)
    assert items[1].reason == "unsupported-layout"


def test_a_stuck_last_time_point_and_an_unreadable_file(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "stuck.TCF"
    create_tcf(path)
    add_time_point(path, 0)
    add_time_point(path, 1, slices=5)
    reader = TCFReader(path, clock=clock, stuck_s=30)
    assert [item.t for item in polls(reader)] == [0]
    clock.now += 29
    assert reader.poll() == []  # unchanged, but not for long enough
    clock.now += 2
    assert reader.poll() == []  # seen once: confirmed by the next scan
    (problem,) = reader.poll()
    assert isinstance(problem, DatasetProblem)
    assert (problem.t, problem.reason) == (1, "incomplete-time-point")
    assert reader.poll() == []

    junk = tmp_path / "junk.TCF"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    reader = TCFReader(junk, clock=clock, stuck_s=30)
    assert polls(reader, 3) == []
    clock.now += 31
    (problem,) = reader.poll()
    assert isinstance(problem, DatasetProblem)
    assert problem.reason == "unreadable-file"
    assert problem.unit == f"{junk}#file"
    assert "junk.TCF" in problem.detail
    clock.now += 100
    assert reader.poll() == []  # reported once


def test_is_done_skips_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "resume.TCF"
    create_tcf(path)
    add_time_point(path, 0)
    add_time_point(path, 1, volume=np.ones((3, 3, 3), np.float32))  # damaged, but already done
    add_time_point(path, 2)
    add_time_point(path, 3)
    done = {f"{path}#3D/000000", f"{path}#3D/000001"}
    reader = TCFReader(path, view="volume", is_done=done.__contains__)
    assert [item.t for item in images(polls(reader))] == [2, 3]


def finished(reader: TCFReader) -> bool:
    return reader.finished  # a call, so the type checker does not narrow it between polls


def test_finished_once_data_count_is_read_and_the_file_stays_quiet(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "end.TCF"
    create_tcf(path)
    reader = TCFReader(path, clock=clock, finished_after_s=300)
    polls(reader)
    assert not finished(reader)  # DataCount 0: nothing acquired yet
    for t in range(3):
        add_time_point(path, t)
    assert len(polls(reader)) == 3
    assert not finished(reader)
    clock.now += 301
    reader.poll()
    at_end = finished(reader)
    add_time_point(path, 3)  # it grows again: not finished, and the new time point is read
    assert [item.t for item in polls(reader)] == [3]
    assert at_end
    assert not finished(reader)
    reader.close()
    assert reader.poll() == []


def test_view_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="view"):
        TCFReader(tmp_path / "x.TCF", view="slices")  # type: ignore[arg-type]
