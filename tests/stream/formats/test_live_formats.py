"""Issue 7 end to end: a real ``livecell run`` follows datasets as the instruments write them.

Writers run as subprocesses (``tests/*_writer.py``) and grow NDTiff datasets, Micro-Manager
OME-TIFF stacks and TCF files with pauses, while the daemon watches the folder. Every image
must come out as exactly one ``frame`` event whose ``crc32`` is that of the pixels the
format's own reader (ndstorage, tifffile, the synthetic RI) gives for the finished dataset.
The SIGKILL tests kill the daemon mid-acquisition and restart it: no frame lost, none twice.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from daemons import Daemon, livecell, read_events, wait_for, write_config
from mmstack_writer import page_pixels
from ndtiff_writer import LiveNDTiff, read_entries, reference
from tcf_writer import add_time_point, create_tcf, synthetic_ri

from livecell.events import pixels_crc32
from livecell.stream.formats.ndtiff import MAX_IMAGES_PER_POLL, axes_name

TESTS = Path(__file__).parents[2]
NDTIFF_SAMPLES = sorted(p for p in (TESTS / "data" / "ndtiff").glob("v*/*") if p.is_dir())


def writer(script: str, *args: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(TESTS / script), *map(str, args)], stdout=subprocess.DEVNULL
    )


def frame_events_by_path(daemon: Daemon) -> dict[str, dict[str, Any]]:
    frames = daemon.events("frame")
    repeated = [p for p, n in Counter(e["path"] for e in frames).items() if n > 1]
    assert not repeated, f"images analysed twice: {repeated}"
    keys = Counter((e["acquisition"], e["position"], e["t"]) for e in frames)
    assert max(keys.values(), default=1) == 1, "two frames with one (acquisition, position, t)"
    return {e["path"]: e for e in frames}


def expected_ndtiff_units(acquisition: Path, sample: Path) -> dict[str, int]:
    """unit -> crc32 of what ndstorage reads from the finished sample, for each image."""
    expected = {}
    with reference(sample) as read:
        for entry in read_entries(sample):
            name = axes_name(tuple(sorted(entry.axes.items())))
            expected[f"{acquisition}#{name}"] = pixels_crc32(read(entry.axes))
    return expected


@pytest.mark.slow
def test_ndtiff_samples_followed_live(make_daemon: Callable[..., Daemon]) -> None:
    daemon = make_daemon(source={"path": "incoming", "format": "auto", "stack": False})
    incoming = daemon.workdir / "incoming"
    incoming.mkdir()
    daemon.start().wait_started()
    expected: dict[str, int] = {}
    for sample in NDTIFF_SAMPLES:
        live = incoming / f"{sample.parent.name}_{sample.name}"
        grow = writer("ndtiff_writer.py", sample, live, "--pause", 0.002)
        expected |= expected_ndtiff_units(live, sample)
        assert grow.wait(timeout=120) == 0
    assert wait_for(lambda: len(daemon.events("frame")) >= len(expected), timeout_s=60), (
        f"{len(daemon.events('frame'))} of {len(expected)} frames:\n{daemon.log_text()[-3000:]}"
    )
    assert wait_for(lambda: daemon.log_text().count('"acquisition finished"') >= 8, timeout_s=10)
    assert daemon.stop() == 0
    frames = frame_events_by_path(daemon)
    assert set(frames) == set(expected)
    wrong = [unit for unit, e in frames.items() if e["crc32"] != expected[unit]]
    assert not wrong, f"pixels differ from ndstorage's for {wrong}"
    assert daemon.events("rejected") == []


def test_ndtiff_stacks_group_channels_and_z(make_daemon: Callable[..., Daemon]) -> None:
    sample = TESTS / "data" / "ndtiff" / "v3" / "ndtiff3.2_multichannel"
    daemon = make_daemon(source={"path": "incoming", "format": "ndtiff"})
    (daemon.workdir / "incoming").mkdir()
    daemon.start().wait_started()
    grow = writer("ndtiff_writer.py", sample, daemon.workdir / "incoming" / "mc", "--pause", 0)
    assert grow.wait(timeout=60) == 0
    images = len(read_entries(sample))

    def planes() -> int:
        return sum(int(np.prod(e["shape"][:-2])) for e in daemon.events("frame"))

    assert wait_for(lambda: planes() >= images, timeout_s=30), daemon.log_text()[-3000:]
    assert daemon.stop() == 0
    assert planes() == images
    frames = daemon.events("frame")
    assert len(frames) < images
    assert {e["axes"] for e in frames} <= {"ZCYX", "CYX", "ZYX"}


def run_with_kills(daemon: Daemon, grow: subprocess.Popen[bytes], rng: random.Random) -> None:
    """SIGKILL the daemon at random moments while ``grow`` writes, restart, let it finish."""
    daemon.start()
    kills_mid_acquisition = 0
    for _ in range(3):
        daemon.wait_started()
        wait_for(lambda: False, timeout_s=rng.uniform(0.2, 1.2))
        kills_mid_acquisition += grow.poll() is None
        daemon.kill()
        daemon.start()
    assert kills_mid_acquisition >= 1, "the acquisition ended before the first kill"
    assert grow.wait(timeout=120) == 0
    daemon.wait_started()


@pytest.mark.slow
def test_ndtiff_sigkill_loses_nothing(make_daemon: Callable[..., Daemon]) -> None:
    sample = TESTS / "data" / "ndtiff" / "v3" / "ndtiff3.2_monochrome"
    daemon = make_daemon(source={"path": "incoming", "format": "ndtiff", "stack": False})
    live = daemon.workdir / "incoming" / "mono"
    live.parent.mkdir()
    grow = writer("ndtiff_writer.py", sample, live, "--pause", 0.04)
    run_with_kills(daemon, grow, random.Random(7))
    expected = expected_ndtiff_units(live, sample)
    assert wait_for(lambda: len(daemon.events("frame")) >= len(expected), timeout_s=60)
    assert daemon.stop() == 0
    frames = frame_events_by_path(daemon)
    assert set(frames) == set(expected)
    assert all(frames[u]["crc32"] == crc for u, crc in expected.items())


@pytest.mark.slow
def test_tcf_followed_live_through_sigkill(make_daemon: Callable[..., Daemon]) -> None:
    daemon = make_daemon(source={"path": "incoming", "format": "tcf", "settle_s": 0.2})
    live = daemon.workdir / "incoming" / "cells.TCF"
    live.parent.mkdir()
    count = 24
    grow = writer("tcf_writer.py", live, "--frames", count, "--pause", 0.2)
    run_with_kills(daemon, grow, random.Random(11))
    assert wait_for(lambda: len(daemon.events("frame")) >= count, timeout_s=60)
    assert daemon.stop() == 0
    frames = frame_events_by_path(daemon)
    assert sorted(e["t"] for e in frames.values()) == list(range(count))
    for e in frames.values():
        assert e["axes"] == "YX"
        assert e["dtype"] == "float32"
        assert e["position"] == "cells"
        assert e["acquisition"] == "cells"
        mip = synthetic_ri(e["t"]).max(axis=0).astype(np.float32)
        assert e["shape"] == list(mip.shape)
    assert daemon.events("rejected") == []


@pytest.mark.slow
def test_mmstack_followed_live_through_sigkill(make_daemon: Callable[..., Daemon]) -> None:
    daemon = make_daemon(source={"path": "incoming", "format": "mmstack", "stack": False})
    incoming = daemon.workdir / "incoming"
    incoming.mkdir()
    pages, size = 40, (64, 64)
    grow = writer(
        "mmstack_writer.py", incoming, "--frames", pages, "--pages-per-file", 12, "--pause", 0.15
    )
    run_with_kills(daemon, grow, random.Random(5))
    assert wait_for(lambda: len(daemon.events("frame")) >= pages, timeout_s=60)
    assert daemon.stop() == 0
    assert len(list(incoming.glob("acq_MMStack_Pos0*.ome.tif"))) == 4  # split three times
    frames = frame_events_by_path(daemon)
    assert sorted(e["t"] for e in frames.values()) == list(range(pages))
    assert {e["acquisition"] for e in frames.values()} == {"acq"}
    for e in frames.values():
        assert e["crc32"] == pixels_crc32(page_pixels(e["t"], size)), f"page {e['t']} pixels differ"
    assert daemon.events("rejected") == []


def cut_short(sample: Path, dataset: Path) -> tuple[Path, bytes]:
    """``sample`` copied to ``dataset`` as a writer that crashed mid-acquisition leaves it:
    its stack file cut at 60 %. Returns the stack file and its whole bytes."""
    shutil.copytree(sample, dataset)
    (stack,) = [p for p in dataset.iterdir() if p.suffix == ".tif"]
    whole = stack.read_bytes()
    stack.write_bytes(whole[: len(whole) * 6 // 10])
    return stack, whole


def test_a_crashed_dataset_is_let_go_when_idle_and_read_on_when_its_writer_returns(
    make_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    sample = TESTS / "data" / "ndtiff" / "v3" / "ndtiff3.2_multichannel"
    daemon = make_daemon(
        source={"path": "incoming", "format": "ndtiff", "stack": False, "dataset_idle_s": 1.0}
    )
    incoming = daemon.workdir / "incoming"
    incoming.mkdir()
    stack, whole = cut_short(sample, tmp_path / "acq")
    daemon.start().wait_started()
    shutil.move(tmp_path / "acq", incoming / "acq")
    let_go = "let go until one of its files changes"
    assert wait_for(lambda: let_go in daemon.log_text(), timeout_s=30), daemon.log_text()[-3000:]
    before = len(daemon.events("frame"))
    assert before > 0, "the images written before the crash are analysed"

    (incoming / "acq" / stack.name).write_bytes(whole)  # the writer came back
    expected = expected_ndtiff_units(incoming / "acq", sample)
    assert len(expected) > before
    assert wait_for(lambda: len(daemon.events("frame")) >= len(expected), timeout_s=30), (
        daemon.log_text()[-3000:]
    )
    assert wait_for(lambda: '"acquisition finished"' in daemon.log_text(), timeout_s=10)
    assert daemon.stop() == 0
    frames = frame_events_by_path(daemon)  # none twice
    assert set(frames) == set(expected)
    assert all(e["crc32"] == expected[unit] for unit, e in frames.items())
    assert daemon.events("rejected") == []


def test_a_replay_reports_a_crashed_dataset_however_short_dataset_idle_s(tmp_path: Path) -> None:
    """Letting go of an idle dataset is for following live; a replay reads to the end."""
    sample = TESTS / "data" / "ndtiff" / "v3" / "ndtiff3.2_multichannel"
    cut_short(sample, tmp_path / "archive" / "acq")
    config = write_config(
        tmp_path / "livecell.toml",
        {"state_dir": "state", "source": {"path": "unused", "dataset_idle_s": 0.001}},
    )
    done = livecell("replay", tmp_path / "archive", "-c", config, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    events = read_events(tmp_path / "events.jsonl")
    assert [e["reason"] for e in events if e["kind"] == "rejected"] == ["unfinished-dataset"]
    assert any(e["kind"] == "frame" for e in events)


@pytest.mark.parametrize("stack", [False, True])
def test_replay_reads_a_finished_dataset_in_bounded_batches(tmp_path: Path, stack: bool) -> None:
    sample = TESTS / "data" / "ndtiff" / "v3" / "ndtiff3.2_monochrome"
    archive = tmp_path / "archive"
    LiveNDTiff(sample, archive / "mono", rng=random.Random(0)).run()
    config = write_config(
        tmp_path / "livecell.toml",
        {"state_dir": "state", "source": {"path": "unused", "format": "ndtiff", "stack": stack}},
    )
    done = livecell("replay", archive, "-c", config, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    frames = [e for e in read_events(tmp_path / "events.jsonl") if e["kind"] == "frame"]
    images = len(read_entries(sample))
    assert images > MAX_IMAGES_PER_POLL  # the replay needed several polls
    assert sum(int(np.prod(e["shape"][:-2])) for e in frames) == images
    assert len(frames) == (images if not stack else len({(e["position"], e["t"]) for e in frames}))


def test_a_bad_time_point_is_rejected_and_the_rest_analysed(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    tcf = archive / "dish.TCF"
    create_tcf(tcf)
    for t in range(3):
        volume = synthetic_ri(t) if t != 1 else synthetic_ri(t)[:, :5]  # t=1: wrong shape
        add_time_point(tcf, t, volume=volume)
    config = write_config(
        tmp_path / "livecell.toml",
        {"state_dir": "state", "source": {"path": "unused", "format": "tcf"}},
    )
    done = livecell("replay", archive, "-c", config, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    events = read_events(tmp_path / "events.jsonl")
    assert sorted(e["t"] for e in events if e["kind"] == "frame") == [0, 2]
    (rejected,) = [e for e in events if e["kind"] == "rejected"]
    assert rejected["t"] == 1
    assert rejected["path"].endswith("dish.TCF#2DMIP/000001")
    assert "time point 1" in rejected["detail"]
    assert tcf.exists()  # nothing moved to quarantine: the file holds good time points


def test_replay_workers_keep_datasets_whole(tmp_path: Path) -> None:
    sample = TESTS / "data" / "ndtiff" / "v3" / "labeled_positions_1"
    archive = tmp_path / "archive"
    LiveNDTiff(sample, archive / "positions", rng=random.Random(0)).run()
    config = write_config(
        tmp_path / "livecell.toml",
        {"state_dir": "state", "source": {"path": "unused", "stack": False}},
    )
    done = livecell("replay", archive, "-c", config, "--workers", 2, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "replayed in one process" in done.stdout
    frames = [e for e in read_events(tmp_path / "events.jsonl") if e["kind"] == "frame"]
    assert len({e["position"] for e in frames}) > 1
    assert len(frames) == len(read_entries(sample))
