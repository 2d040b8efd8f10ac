"""NDTiffReader against real Micro-Manager NDTiff datasets re-written as a live acquisition.

Each sample dataset (v2.0 .. v3.3) is grown entry by entry by ``ndtiff_writer`` in
small random chunks while the reader polls; every image must come out once, whole,
with the pixels Micro-Manager's own reader (``ndstorage``) reads from the finished copy.
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path
from typing import Any

import ndstorage  # type: ignore[import-untyped]
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ndtiff_writer import FULL_RESOLUTION, LiveNDTiff, RawEntry, corrupt, read_entries, reference

from livecell.stream.formats._protocol import DatasetImage, DatasetItem, DatasetProblem
from livecell.stream.formats.ndtiff import MAX_IMAGES_PER_POLL, NDTiffReader, axes_name

DATA = Path(__file__).parents[2] / "data" / "ndtiff"  # copied from ../shared/data/ndtiff
SAMPLES = {
    "v2.0": DATA / "v2" / "ndtiffv2.0_test",
    "v3.0": DATA / "v3" / "ndtiffv3.0_test",
    "12bit": DATA / "v3" / "12_bit_pycromanager_mda",
    "11bit": DATA / "v3" / "ndtiff3.2_11bit_1",
    "monochrome": DATA / "v3" / "ndtiff3.2_monochrome",
    "multichannel": DATA / "v3" / "ndtiff3.2_multichannel",
    "positions": DATA / "v3" / "labeled_positions_1",
    "magellan": DATA / "v3" / "no_magellan_explore_no_channel",
}


def unit_of(dataset: Path, entry: RawEntry) -> str:
    return f"{dataset}#{axes_name(tuple(sorted(entry.axes.items())))}"


def drain(reader: NDTiffReader) -> list[DatasetItem]:
    """Poll until a poll finds nothing: a poll reads at most MAX_IMAGES_PER_POLL entries."""
    items: list[DatasetItem] = []
    while found := reader.poll():
        items += found
    return items


def grow_and_poll(
    writer: LiveNDTiff, reader: NDTiffReader, rng: random.Random, p_poll: float = 0.3
) -> list[DatasetItem]:
    """Grow the dataset, polling at random points; then poll until the reader sees the end."""
    items: list[DatasetItem] = []
    for what, _ in writer.steps():
        if what != "finished" and rng.random() < p_poll:
            items += reader.poll()
            assert not reader.finished or what == "stack", "finished before the writer finished"
    for _ in range(3):
        items += drain(reader)
    assert reader.finished
    return items


def images(items: list[DatasetItem]) -> list[DatasetImage]:
    return [i for i in items if isinstance(i, DatasetImage)]


@pytest.mark.parametrize("java_style", [False, True], ids=["appending", "preallocated"])
@pytest.mark.parametrize("name", list(SAMPLES))
def test_every_image_once_whole_while_growing(tmp_path: Path, name: str, java_style: bool) -> None:
    src, dst = SAMPLES[name], tmp_path / name
    entries = read_entries(src)
    rng = random.Random(7)
    writer = LiveNDTiff(src, dst, rng=rng, java_style=java_style)
    reader = NDTiffReader(dst, stack=False)
    items = grow_and_poll(writer, reader, rng)
    reader.close()

    assert not [i for i in items if isinstance(i, DatasetProblem)]
    got = {i.unit: i for i in images(items)}
    assert len(got) == len(items) == len(entries)
    with reference(dst) as read:
        for entry in entries:
            frame = got[unit_of(dst, entry)]
            assert frame.axes == "YX"
            assert frame.t == entry.axes.get("time", 0)
            assert frame.pixels.dtype.byteorder in "=<|"
            np.testing.assert_array_equal(frame.pixels, read(entry.axes))
        # write order
        assert [i.unit for i in items] == [unit_of(dst, e) for e in entries]


def test_positions_channels_and_z_go_into_the_position_name(tmp_path: Path) -> None:
    names: dict[str, set[str]] = {}
    for key in ("multichannel", "positions", "magellan", "v3.0"):
        dst = tmp_path / key
        LiveNDTiff(SAMPLES[key], dst, rng=random.Random(1)).run()
        reader = NDTiffReader(dst, stack=False)
        names[key] = {i.position for i in images(drain(reader))}
    assert "Pos0-c=FITC-z=15" in names["multichannel"]
    assert len(names["multichannel"]) == 32
    assert names["positions"] == {"Pos0", "Pos1", "Pos2"}
    assert "r4c2-SecondaryZ=0-TertiaryZ=0-Z=0" in names["magellan"]
    assert names["v3.0"] == {"Pos0-c=0", "Pos0-c=1"}  # numbered channels, no ChNames


@pytest.mark.parametrize(
    ("name", "axes", "shape", "channels", "count"),
    [
        ("multichannel", "ZCYX", (16, 2, 64, 64), ("DAPI", "FITC"), 8),
        ("monochrome", "ZYX", (16, 64, 64), (), 8),
        ("12bit", "CYX", (2, 64, 64), ("DAPI", "FITC"), 4),
        ("v2.0", "CYX", (2, 32, 32), ("0", "1"), 5),
        ("11bit", "YX", (64, 64), (), 10),
    ],
)
def test_stack_joins_z_and_channels_of_one_time_point(
    tmp_path: Path,
    name: str,
    axes: str,
    shape: tuple[int, ...],
    channels: tuple[str, ...],
    count: int,
) -> None:
    src, dst = SAMPLES[name], tmp_path / name
    rng = random.Random(3)
    reader = NDTiffReader(dst, stack=True)
    items = grow_and_poll(LiveNDTiff(src, dst, rng=rng), reader, rng)
    frames = images(items)
    assert len(frames) == len(items) == count
    assert [f.t for f in frames] == list(range(count))
    assert len({f.unit for f in frames}) == count
    with reference(dst) as read:
        for frame in frames:
            assert (frame.axes, frame.pixels.shape, frame.channels) == (axes, shape, channels)
            assert frame.position == "Pos0"
            cube = frame.pixels.reshape((-1, len(channels) or 1, *shape[-2:]))
            for z in range(cube.shape[0]):
                for c in range(cube.shape[1]):
                    coords: dict[str, Any] = {"time": frame.t}
                    if "Z" in axes:
                        coords["z"] = z
                    if "C" in axes:
                        coords["channel"] = channels[c] if name != "v2.0" else c
                    np.testing.assert_array_equal(cube[z, c], read(coords))


def test_a_time_point_is_handed_out_without_waiting_for_the_next(tmp_path: Path) -> None:
    """Once t=0 showed a stack is 32 images, t=1 comes out at its 32nd image."""
    src, dst = SAMPLES["multichannel"], tmp_path / "mc"
    reader = NDTiffReader(dst, stack=True)
    got: list[DatasetItem] = []
    for what, number in LiveNDTiff(src, dst, rng=random.Random(5)).steps():
        if what == "entry" and number in (31, 63):
            got += reader.poll()
            if number == 31:
                assert got == []  # t=0 may still grow: its size is not known yet
            if number == 63:
                break
    frames = images(got)
    assert [f.t for f in frames] == [0, 1]  # t=0 closed by t=1's first image, t=1 by its count
    assert not reader.finished


def test_is_done_images_are_skipped(tmp_path: Path) -> None:
    src, dst = SAMPLES["multichannel"], tmp_path / "mc"
    LiveNDTiff(src, dst, rng=random.Random(2)).run()
    first = NDTiffReader(dst, stack=False)
    units = [i.unit for i in drain(first)]
    done = set(units[::3])
    second = NDTiffReader(dst, stack=False, is_done=done.__contains__)
    assert [i.unit for i in drain(second)] == [u for u in units if u not in done]
    assert second.finished

    stacks = [i.unit for i in drain(NDTiffReader(dst, stack=True))]
    third = NDTiffReader(dst, stack=True, is_done={stacks[0], stacks[5]}.__contains__)
    assert [i.unit for i in drain(third)] == stacks[1:5] + stacks[6:]


def test_corrupt_entries_are_reported_and_the_rest_read(tmp_path: Path) -> None:
    src, dst = SAMPLES["v3.0"], tmp_path / "bad"
    entries = read_entries(src)
    broken = {2: "json", 4: "pixel-type", 6: "offset"}
    live = [corrupt(e, broken[e.number]) if e.number in broken else e for e in entries]
    rng = random.Random(11)
    reader = NDTiffReader(dst, stack=False)
    items = grow_and_poll(LiveNDTiff(src, dst, rng=rng, entries=live), reader, rng)

    problems = {p.unit.rsplit("#", 1)[1]: p for p in items if isinstance(p, DatasetProblem)}
    assert {k: p.reason for k, p in problems.items()} == {
        "entry-2": "bad-index-entry",
        "entry-4": "unknown-pixel-type",
        axes_name(tuple(sorted(entries[6].axes.items()))): "pixels-beyond-file",
    }
    assert "pixel type 9" in problems["entry-4"].detail
    with reference(src) as read:
        good = [e for e in entries if e.number not in broken]
        frames = {f.unit: f for f in images(items)}
        assert len(frames) == len(good)
        for entry in good:
            np.testing.assert_array_equal(frames[unit_of(dst, entry)].pixels, read(entry.axes))


@pytest.mark.parametrize("broken_entry", [0, 1, 31])  # first, inside and last of t=0
@pytest.mark.parametrize("live", [True, False], ids=["live", "replay"])
def test_a_broken_entry_in_the_first_stack_spoils_that_stack_only(
    tmp_path: Path, broken_entry: int, live: bool
) -> None:
    """The first stack of a position sets how many images make one; a broken entry
    among them is one of them (else every later stack closed one image short)."""
    src, dst = SAMPLES["multichannel"], tmp_path / "mc"
    entries = [corrupt(e, "json") if e.number == broken_entry else e for e in read_entries(src)]
    reader = NDTiffReader(dst, stack=True)
    items: list[DatasetItem] = []
    for what, _ in LiveNDTiff(src, dst, rng=random.Random(3), entries=entries).steps():
        if live and what == "entry":
            items += reader.poll()
    items += drain(reader)
    problems = sorted(p.reason for p in items if isinstance(p, DatasetProblem))
    assert problems == ["bad-index-entry", "irregular-stack"]
    assert [f.t for f in images(items)] == list(range(1, 8))


def test_accepts_the_full_resolution_folder_and_ignores_pyramid_levels(tmp_path: Path) -> None:
    dst = tmp_path / "explore"
    LiveNDTiff(SAMPLES["magellan"], dst, rng=random.Random(0)).run()
    assert (dst / "Downsampled_x2" / "NDTiff.index").exists()
    top = [i.unit.split("#")[1] for i in drain(NDTiffReader(dst, stack=False))]
    inner = [i.unit.split("#")[1] for i in drain(NDTiffReader(dst / FULL_RESOLUTION, stack=False))]
    assert top == inner
    assert len(top) == 18


def test_nothing_before_the_dataset_exists_and_cheap_when_idle(tmp_path: Path) -> None:
    dst = tmp_path / "later"
    reader = NDTiffReader(dst, stack=False)
    assert reader.poll() == []
    assert not reader.finished
    writer = LiveNDTiff(SAMPLES["11bit"], dst, rng=random.Random(0))
    steps = writer.steps()
    for what, _ in steps:
        if what == "entry":
            break
    assert len(reader.poll()) == 1
    assert reader.poll() == []  # nothing new
    assert not reader.finished
    for _ in steps:
        pass
    assert len(reader.poll()) == 9
    reader.poll()
    assert reader.finished


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), p_poll=st.floats(0.02, 1.0), chunk=st.integers(1, 64))
def test_random_poll_points_never_give_a_partial_or_repeated_image(
    seed: int, p_poll: float, chunk: int
) -> None:
    src = SAMPLES["12bit"]
    entries = read_entries(src)
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "d"
        rng = random.Random(seed)
        writer = LiveNDTiff(
            src, dst, rng=rng, index_chunk=chunk, stack_chunk=chunk * 64, java_style=seed % 2 == 1
        )
        reader = NDTiffReader(dst, stack=False)
        items = grow_and_poll(writer, reader, rng, p_poll)
        with reference(dst) as read:
            assert [i.unit for i in items] == [unit_of(dst, e) for e in entries]
            for entry, frame in zip(entries, images(items), strict=True):
                np.testing.assert_array_equal(frame.pixels, read(entry.axes))


def test_writer_script_grows_a_dataset_in_another_process(tmp_path: Path) -> None:
    src, dst = SAMPLES["v3.0"], tmp_path / "script"
    script = Path(__file__).parents[2] / "ndtiff_writer.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(src), str(dst), "--pause", "0.02", "--seed", "4"]
    )
    reader = NDTiffReader(dst, stack=False)
    items: list[DatasetItem] = []
    deadline = time.monotonic() + 20
    while not reader.finished and time.monotonic() < deadline:
        items += reader.poll()
        time.sleep(0.005)
    assert proc.wait(timeout=10) == 0
    assert reader.finished
    assert len(images(items)) == len(items) == 10
    assert len({i.unit for i in items}) == 10


# ndstorage's writer leaves a read handle of its own open (not the reader under test)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_poll_reads_a_bounded_batch(tmp_path: Path) -> None:
    dst = tmp_path / "mono"
    LiveNDTiff(SAMPLES["monochrome"], dst, rng=random.Random(3)).run()
    reader = NDTiffReader(dst, stack=False)
    batches = []
    while found := reader.poll():
        batches.append(len(found))
    assert max(batches) == MAX_IMAGES_PER_POLL
    assert sum(batches) == 128


# ndstorage's writer leaves a read handle of its own open (not the reader under test)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_dataset_written_by_ndstorage_itself(tmp_path: Path) -> None:
    """Micro-Manager's Python writer: 8-bit images, numbered positions, its own finish()."""
    with redirect_stdout(StringIO()):
        ds = ndstorage.NDTiffDataset(str(tmp_path), name="py", writable=True)
    ds.initialize({"PixelSize_um": 0.5})
    rng = np.random.default_rng(0)
    written = {}
    reader = NDTiffReader(Path(ds.path), stack=False)
    items: list[DatasetItem] = []
    for t in range(3):
        for p in range(2):
            image = rng.integers(0, 256, (24, 40), dtype=np.uint8)
            ds.put_image({"time": t, "position": p}, image, {"Axes": {"time": t}})
            written[f"Pos{p}", t] = image
            items += reader.poll() + reader.poll()
            assert not reader.finished
    ds.finish()
    ds.close()
    items += reader.poll() + reader.poll()
    assert reader.finished
    frames = images(items)
    assert len(frames) == len(items) == 6
    for frame in frames:
        assert frame.pixels.dtype == np.uint8
        assert frame.pixel_size_um == 0.5
        np.testing.assert_array_equal(frame.pixels, written[frame.position, frame.t])
    reader.close()
