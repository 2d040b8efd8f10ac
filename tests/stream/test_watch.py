"""The watch source end to end: a real ``livecell run`` over a real folder of TIFF files.

Files are written the way microscopes write them: opened, written in pieces
(sometimes with pauses), closed. Acceptance criterion 2 of the Foundation issue
runs with inotify and with ``polling = true``.
"""

from __future__ import annotations

import io
import os
import random
import signal
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from daemons import Daemon, wait_for
from prometheus_client.parser import text_string_to_metric_families

MODES = pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
SETTLE_S = 0.3
QUIET_S = 1.0  # how long we watch for events that must not come


# --- writing files as a microscope does ------------------------------------------------


def image(t: int, shape: tuple[int, ...] = (16, 16), dtype: str = "uint16") -> np.ndarray:
    """Deterministic pixels that differ per ``t``."""
    rng = np.random.default_rng(t)
    return rng.integers(1, 4000, size=shape).astype(dtype)


def tiff_bytes(pixels: np.ndarray, **kwargs: Any) -> bytes:
    """The bytes tifffile writes for ``pixels`` (plain TIFF unless ``ome=True``)."""
    kwargs.setdefault("ome", False)
    kwargs.setdefault("photometric", "minisblack")
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, pixels, **kwargs)
    return buffer.getvalue()


def write_file(path: Path, data: bytes) -> float:
    """Open, write, close; return the time the file was closed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return time.time()


def write_in_chunks(path: Path, data: bytes, *, chunks: int, pause_s: float) -> float:
    """Write ``data`` in ``chunks`` pieces ``pause_s`` apart; return when the last write began."""
    path.parent.mkdir(parents=True, exist_ok=True)
    step = -(-len(data) // chunks)
    last_write_at = 0.0
    with open(path, "wb") as f:
        for i in range(chunks):
            if i:
                time.sleep(pause_s)
            last_write_at = time.time()
            f.write(data[i * step : (i + 1) * step])
            f.flush()
    return last_write_at


# --- driving the daemon -----------------------------------------------------------------


def watch_daemon(
    make_daemon: Callable[..., Daemon], *, polling: bool, settle_s: float = SETTLE_S, **source: Any
) -> Daemon:
    """A daemon watching ``<workdir>/incoming`` (created here), not started yet."""
    daemon = make_daemon(
        source={
            "kind": "watch",
            "path": "incoming",
            "polling": polling,
            "settle_s": settle_s,
            **source,
        }
    )
    incoming(daemon).mkdir(exist_ok=True)
    return daemon


def make_folder(folder: Path) -> None:
    """Create a position folder ahead of its files, as acquisition software does.

    inotify watches a new folder only once it has seen it created: a file written
    into it within that instant has no close event (the watcher then goes by
    ``settle_s``). The pause lets the watch be set up first.
    """
    folder.mkdir(parents=True, exist_ok=True)
    time.sleep(0.2)


def incoming(daemon: Daemon) -> Path:
    return daemon.workdir / "incoming"


def start(daemon: Daemon) -> Daemon:
    """Start and wait for this run's own ``watching`` line (earlier runs' logs do not count)."""
    daemon.start()
    log = daemon.logs[-1]
    assert daemon.proc is not None
    proc = daemon.proc
    ok = wait_for(
        lambda: (
            (log.exists() and '"watching"' in log.read_text(errors="replace"))
            or proc.poll() is not None
        ),
        timeout_s=20,
    )
    assert ok, f"daemon did not start:\n{daemon.log_text()}"
    assert proc.poll() is None, f"daemon exited:\n{daemon.log_text()}"
    return daemon


def frame_keys(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(e["position"], e["t"]) for e in events if e["kind"] == "frame"]


def assert_unique_ids(daemon: Daemon) -> None:
    ids = [e["event_id"] for e in daemon.events()]
    assert len(ids) == len(set(ids)), "an event_id appears twice in the events file"


def rejected_counts(daemon: Daemon) -> dict[str, float]:
    """``livecell_frames_rejected_total`` by reason, from the live /metrics endpoint."""
    url = f"http://127.0.0.1:{daemon.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "livecell_frames_rejected_total":
                counts[sample.labels["reason"]] = sample.value
    return counts


def stop_cleanly(daemon: Daemon) -> None:
    assert daemon.stop(signal.SIGTERM) == 0, daemon.log_text()


# --- acceptance criterion 2 ----------------------------------------------------------------


@MODES
def test_slow_2048_file_gives_one_frame_event_after_its_last_chunk(
    make_daemon: Callable[..., Daemon], polling: bool
) -> None:
    # settle_s is longer than the pauses: a writer that stalls longer than settle_s
    # would (rightly) get its file rejected as truncated.
    settle_s = 1.0
    daemon = start(watch_daemon(make_daemon, polling=polling, settle_s=settle_s))
    pixels = image(1, shape=(2048, 2048))
    path = incoming(daemon) / "Pos0" / "img_0001.tif"
    make_folder(path.parent)

    last_write_at = write_in_chunks(path, tiff_bytes(pixels), chunks=4, pause_s=0.5)
    closed_at = time.time()

    frames = daemon.wait_events("frame", 1, timeout_s=15)
    time.sleep(QUIET_S + 1.0)  # a second (or a half-file) event would show up here
    assert len(daemon.events("frame")) == 1, daemon.events()
    assert daemon.events("rejected") == []
    event = frames[0]
    assert event["emitted_at"] > last_write_at, "analysed before the last chunk was written"
    if polling:  # no close event to go by: the file must be unchanged for settle_s
        assert event["emitted_at"] >= last_write_at + settle_s - 0.05
    else:  # the close is seen: no need to wait for settle_s
        assert event["emitted_at"] - closed_at < 0.8 * settle_s
    completed_at = event["emitted_at"] - event["latency_s"]
    assert completed_at >= last_write_at - 0.05  # file timestamps are coarse by a few ms
    assert event["shape"] == [2048, 2048]
    assert event["dtype"] == "uint16"
    assert event["axes"] == "YX"
    assert event["source"] == "watch"
    assert event["path"] == str(path)
    assert (event["acquisition"], event["position"], event["t"]) == ("incoming", "Pos0", 1)
    assert path.exists(), "a good file stays where the microscope wrote it"
    stop_cleanly(daemon)


@MODES
@pytest.mark.parametrize("how", ["moved_in", "copied"])
def test_fifty_files_at_once_all_arrive_in_t_order_per_position(
    make_daemon: Callable[..., Daemon], polling: bool, how: str
) -> None:
    daemon = start(watch_daemon(make_daemon, polling=polling))
    positions, times = [f"Pos{p}" for p in range(5)], range(10)
    expected = {(p, t) for p in positions for t in times}
    if how == "moved_in":
        # A whole acquisition folder appears in one rename, its files created in no order:
        # ordering is entirely the watcher's job.
        staging = daemon.workdir / "staging" / "run1"
        order = sorted(expected)
        random.Random(0).shuffle(order)
        for position, t in order:
            write_file(staging / position / f"img_t{t:04d}.tif", tiff_bytes(image(t)))
        os.rename(staging, incoming(daemon) / "run1")
        folder = incoming(daemon) / "run1"
    else:
        # `cp -r Pos*` into the watched folder: one position after the other, names sorted.
        folder = incoming(daemon)
        for position in positions:
            for t in times:
                write_file(folder / position / f"img_t{t:04d}.tif", tiff_bytes(image(t)))

    daemon.wait_events("frame", 50, timeout_s=30)
    time.sleep(QUIET_S)
    frames = daemon.events("frame")
    assert daemon.events("rejected") == []
    assert len(frames) == 50
    assert set(frame_keys(frames)) == expected
    for position in positions:
        ts = [t for p, t in frame_keys(frames) if p == position]
        assert ts == list(times), f"{position} out of order: {ts}"
    for event in frames:
        assert event["path"] == str(folder / event["position"] / f"img_t{event['t']:04d}.tif")
        assert event["shape"] == [16, 16]
    assert_unique_ids(daemon)
    stop_cleanly(daemon)


@MODES
def test_backlog_present_before_start_is_analysed_in_acquisition_order(
    make_daemon: Callable[..., Daemon], polling: bool
) -> None:
    daemon = watch_daemon(make_daemon, polling=polling)
    keys = [(f"Pos{p}", t) for p in range(3) for t in range(4)]
    random.Random(1).shuffle(keys)  # created (and so timestamped) out of order
    for position, t in keys:
        write_file(incoming(daemon) / position / f"frame_{t:03d}.tif", tiff_bytes(image(t)))

    start(daemon)
    daemon.wait_events("frame", len(keys), timeout_s=20)
    time.sleep(QUIET_S)
    order = frame_keys(daemon.events("frame"))
    assert sorted(order) == sorted(keys)
    assert [t for _, t in order] == sorted(t for _, t in order), f"not in t order: {order}"
    for position in {p for p, _ in keys}:
        assert [t for p, t in order if p == position] == [0, 1, 2, 3]
    stop_cleanly(daemon)


def test_the_next_experiment_under_the_watched_root_is_not_taken_for_duplicates(
    make_daemon: Callable[..., Daemon],
) -> None:
    """A microscope saves each experiment in its own folder under one data root, with the
    same position folders and file names: each folder is its own acquisition."""
    daemon = watch_daemon(make_daemon, polling=False)
    names = [(position, t) for t in range(3) for position in ("Pos0", "Pos1")]
    for position, t in names:
        write_file(incoming(daemon) / "run1" / position / f"img_{t:03d}.tif", tiff_bytes(image(t)))
    start(daemon)
    daemon.wait_events("frame", len(names), timeout_s=20)
    files = [incoming(daemon) / "run2" / position / f"img_{t:03d}.tif" for position, t in names]
    for path, (_, t) in zip(files, names, strict=True):
        write_file(path, tiff_bytes(image(t + 100)))
    daemon.wait_events("frame", 2 * len(names), timeout_s=20)
    time.sleep(QUIET_S)
    stop_cleanly(daemon)

    events = daemon.events()
    assert not [e for e in events if e["kind"] == "rejected"]
    frames = Counter(e["acquisition"] for e in events if e["kind"] == "frame")
    assert frames == {"run1": len(names), "run2": len(names)}
    assert all(path.exists() for path in files), "a frame of the second experiment was moved"
    assert_unique_ids(daemon)


@MODES
def test_restart_emits_nothing_again_but_picks_up_files_written_while_down(
    make_daemon: Callable[..., Daemon], polling: bool
) -> None:
    daemon = start(watch_daemon(make_daemon, polling=polling))
    for t in range(5):
        write_file(incoming(daemon) / "Pos0" / f"img_{t:04d}.tif", tiff_bytes(image(t)))
    write_file(incoming(daemon) / "Pos0" / "bad_0099.tif", b"")  # rejected and quarantined
    daemon.wait_events("frame", 5)
    assert daemon.wait_events("rejected", 1)
    stop_cleanly(daemon)
    first_run = daemon.events()
    assert len(first_run) == 6

    start(daemon)
    time.sleep(SETTLE_S + QUIET_S)
    assert daemon.events() == first_run, "the restart emitted events again"

    write_file(incoming(daemon) / "Pos0" / "img_0005.tif", tiff_bytes(image(5)))
    daemon.wait_events("frame", 6)
    stop_cleanly(daemon)
    # Down time: the microscope goes on writing; the next start analyses exactly that.
    for t in (6, 7):
        write_file(incoming(daemon) / "Pos0" / f"img_{t:04d}.tif", tiff_bytes(image(t)))
    start(daemon)
    daemon.wait_events("frame", 8)
    time.sleep(SETTLE_S + QUIET_S)
    stop_cleanly(daemon)

    events = daemon.events()
    assert events[: len(first_run)] == first_run
    assert frame_keys(events) == [("Pos0", t) for t in range(8)]
    assert len(daemon.events("rejected")) == 1
    assert_unique_ids(daemon)


@MODES
def test_file_written_under_a_temporary_name_then_renamed(
    make_daemon: Callable[..., Daemon], polling: bool
) -> None:
    daemon = start(watch_daemon(make_daemon, polling=polling, settle_s=1.0))
    make_folder(incoming(daemon) / "Pos0")
    part = incoming(daemon) / "Pos0" / "img_0001.tif.part"  # not a watched pattern
    write_in_chunks(part, tiff_bytes(image(1, (512, 512))), chunks=3, pause_s=0.3)
    final = part.with_name("img_0001.tif")
    os.rename(part, final)
    renamed_at = time.time()

    frames = daemon.wait_events("frame", 1)
    time.sleep(QUIET_S)
    assert len(daemon.events("frame")) == 1, daemon.events()
    assert daemon.events("rejected") == []
    assert frames[0]["path"] == str(final)
    assert frames[0]["shape"] == [512, 512]
    assert frames[0]["emitted_at"] - renamed_at < 0.8, "a rename is a finished file"
    stop_cleanly(daemon)


# --- bad input -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BadFile:
    """A file the daemon must reject: how to write it, and the reason it must give."""

    name: str
    reason: str
    relpath: str
    write: Callable[[Path], None]


def _zero_bytes(path: Path) -> None:
    write_file(path, b"")


def _text(path: Path) -> None:
    write_file(path, b"This is not an image, just notes someone saved as .tif\n" * 20)


def _truncated(path: Path) -> None:
    data = tiff_bytes(image(3, shape=(64, 64)), rowsperstrip=8)
    write_file(path, data[: len(data) * 3 // 5 + 7])  # mid-strip, never completed


def _axes_mismatch(path: Path) -> None:
    write_file(path, tiff_bytes(image(4, shape=(3, 16, 16))))  # ZYX data, config axes = YX


def _all_nan(path: Path) -> None:
    write_file(path, tiff_bytes(np.full((16, 16), np.nan, dtype=np.float32)))


def _duplicate(path: Path) -> None:
    # The same (position, t) as a good file written first: a_0005.tif keeps the frame.
    write_file(path.with_name("a_0005.tif"), tiff_bytes(image(5)))
    write_file(path, tiff_bytes(image(55)))


def _no_digits(path: Path) -> None:
    write_file(path, tiff_bytes(image(6)))  # a good image, but no t in its name


def _ome_t_too_large(path: Path) -> None:
    annotation = {"t": str(2**64)}  # past SQLite's integers: once an internal error
    write_file(
        path, tiff_bytes(image(6), ome=True, metadata={"axes": "YX", "MapAnnotation": annotation})
    )


BAD_FILES = [
    BadFile("zero_bytes", "empty_file", "Pos0/empty_0001.tif", _zero_bytes),
    BadFile("text", "not_tiff", "Pos0/notes_0002.tif", _text),
    BadFile("truncated", "truncated", "Pos0/cut_0003.tif", _truncated),
    BadFile("axes_mismatch", "axes_mismatch", "Pos0/stack_0004.tif", _axes_mismatch),
    BadFile("all_nan", "all_nan", "Pos1/nan_0001.tif", _all_nan),
    BadFile("duplicate", "duplicate", "Pos2/b_0005.tif", _duplicate),
    BadFile("no_t_in_name", "no_position_t", "Pos3/overview.tif", _no_digits),
    BadFile("ome_t_too_large", "bad_metadata", "Pos4/big_t_0001.ome.tif", _ome_t_too_large),
]


def assert_rejected_and_quarantined(daemon: Daemon, bad: BadFile, written: bytes) -> None:
    path = incoming(daemon) / bad.relpath
    rejected = [e for e in daemon.events("rejected") if e["path"] == str(path)]
    assert len(rejected) == 1, daemon.events()
    assert rejected[0]["reason"] == bad.reason, rejected[0]
    quarantined = daemon.state_dir / "quarantine" / path.name
    reason_txt = quarantined.with_name(path.name + ".reason.txt")
    assert wait_for(reason_txt.exists, timeout_s=5), f"{path.name} not quarantined"
    assert f"reason: {bad.reason}" in reason_txt.read_text()
    assert quarantined.read_bytes() == written, "quarantine must keep the file as it was"
    assert not path.exists()
    assert f'"reason": "{bad.reason}"' in daemon.log_text(), "the rejection is not logged"


@pytest.mark.parametrize("bad", BAD_FILES, ids=[b.name for b in BAD_FILES])
def test_bad_file_is_rejected_counted_quarantined_and_the_daemon_goes_on(
    make_daemon: Callable[..., Daemon], bad: BadFile
) -> None:
    daemon = watch_daemon(make_daemon, polling=False)
    path = incoming(daemon) / bad.relpath
    path.parent.mkdir(parents=True, exist_ok=True)  # watched from the start: no notice lost
    start(daemon)
    bad.write(path)
    written = path.read_bytes()

    daemon.wait_events("rejected", 1, timeout_s=15)
    assert_rejected_and_quarantined(daemon, bad, written)
    assert wait_for(lambda: rejected_counts(daemon).get(bad.reason) == 1.0, timeout_s=5), (
        rejected_counts(daemon)
    )

    good = incoming(daemon) / "Pos9" / "good_0100.tif"
    write_file(good, tiff_bytes(image(100)))
    assert wait_for(lambda: any(e["path"] == str(good) for e in daemon.events("frame")))
    assert daemon.proc is not None
    assert daemon.proc.poll() is None, "the daemon stopped after a bad file"
    assert len(daemon.events("rejected")) == 1
    if bad.name == "duplicate":
        kept = [e for e in daemon.events("frame") if (e["position"], e["t"]) == ("Pos2", 5)]
        assert [e["path"] for e in kept] == [str(path.with_name("a_0005.tif"))]
    stop_cleanly(daemon)


@pytest.mark.parametrize("size", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_a_pixel_size_that_is_no_number_is_left_out_and_costs_nothing(
    make_daemon: Callable[..., Daemon], size: float
) -> None:
    """A non-finite PhysicalSizeX once made the frame event unwritable as JSON: the daemon
    exited, and at every restart again on the same file."""
    daemon = start(watch_daemon(make_daemon, polling=False))
    folder = incoming(daemon) / "Pos0"
    make_folder(folder)
    odd = tiff_bytes(image(1), ome=True, metadata={"axes": "YX", "PhysicalSizeX": size})
    write_file(folder / "odd_0001.ome.tif", odd)
    write_file(folder / "good_0002.tif", tiff_bytes(image(2)))
    frames = daemon.wait_events("frame", 2, timeout_s=15)
    assert [e["t"] for e in frames] == [1, 2], daemon.log_text()[-3000:]
    assert "pixel_size_um" not in frames[0]
    assert daemon.events("rejected") == []
    stop_cleanly(daemon)


def test_a_file_that_decodes_past_max_frame_mib_is_rejected_before_it_is_decoded(
    make_daemon: Callable[..., Daemon],
) -> None:
    daemon = start(watch_daemon(make_daemon, polling=False, max_frame_mib=0.01))
    folder = incoming(daemon) / "Pos0"
    make_folder(folder)
    zeros = np.zeros((256, 256), np.uint16)  # 128 KiB of pixels in a file of a few hundred bytes
    bomb = tiff_bytes(zeros, compression="zlib")
    assert len(bomb) < 2000
    write_file(folder / "bomb_0001.tif", bomb)
    write_file(folder / "good_0002.tif", tiff_bytes(image(2)))  # 512 bytes of pixels
    # 32 KiB as they are on disk: over the limit, but no bomb (and memory-mapped)
    write_file(folder / "plain_0003.tif", tiff_bytes(image(3, (128, 128))))
    daemon.wait_events("frame", 2, timeout_s=15)
    (rejected,) = daemon.wait_events("rejected", 1, timeout_s=5)
    assert rejected["reason"] == "shape_too_large"
    assert "source.max_frame_mib" in rejected["detail"]
    assert [e["t"] for e in daemon.events("frame")] == [2, 3]
    stop_cleanly(daemon)


@pytest.mark.parametrize("when", ["backlog", "live"])
def test_an_entry_that_cannot_be_read_at_all_is_rejected_and_the_daemon_goes_on(
    make_daemon: Callable[..., Daemon], when: str
) -> None:
    """A symbolic link to itself fails even ``stat`` (ELOOP), as a stale network share
    can: one such entry, there at start-up or arriving later, costs no other frame."""
    daemon = watch_daemon(make_daemon, polling=False)
    loop = incoming(daemon) / "Pos0" / "loop_0001.tif"
    loop.parent.mkdir(parents=True, exist_ok=True)
    if when == "backlog":
        loop.symlink_to(loop.name)
    start(daemon)
    if when == "live":
        loop.symlink_to(loop.name)
    good = incoming(daemon) / "Pos0" / "good_0002.tif"
    write_file(good, tiff_bytes(image(2)))

    daemon.wait_events("rejected", 1, timeout_s=15)
    assert wait_for(lambda: any(e["path"] == str(good) for e in daemon.events("frame")))
    (rejected,) = daemon.events("rejected")
    assert rejected["reason"] == "read_error"
    assert "Too many levels of symbolic links" in rejected["detail"]
    assert wait_for(lambda: (daemon.state_dir / "quarantine" / loop.name).is_symlink())
    stop_cleanly(daemon)


@pytest.mark.parametrize("how", ["deleted", "renamed"])
def test_an_events_file_deleted_while_running_is_started_again_and_refilled(
    make_daemon: Callable[..., Daemon], how: str
) -> None:
    """Someone deletes events.jsonl under a running daemon, or a rotation renames it:
    later frames go to a new file at the same path (after a rename they went on into the
    renamed file), and after a restart the frames whose events went with the old file
    (their files still in the folder) get them back: every frame has its event."""
    daemon = watch_daemon(make_daemon, polling=False)
    (incoming(daemon) / "Pos0").mkdir(parents=True)
    start(daemon)
    for t in range(2):
        write_file(incoming(daemon) / "Pos0" / f"img_{t:03d}.tif", tiff_bytes(image(t)))
    daemon.wait_events("frame", 2, timeout_s=15)
    if how == "deleted":
        daemon.events_path.unlink()
    else:
        daemon.events_path.rename(daemon.events_path.with_name("events.jsonl.1"))
    for t in range(2, 4):
        write_file(incoming(daemon) / "Pos0" / f"img_{t:03d}.tif", tiff_bytes(image(t)))
    assert wait_for(lambda: daemon.events_path.exists() and len(daemon.events("frame")) >= 1)
    assert "events file was deleted or moved away" in daemon.log_text()
    stop_cleanly(daemon)

    start(daemon)
    assert wait_for(lambda: len(daemon.events("frame")) >= 4, timeout_s=20), daemon.events()
    time.sleep(QUIET_S)
    stop_cleanly(daemon)
    assert sorted(t for _, t in frame_keys(daemon.events())) == [0, 1, 2, 3]
    assert_unique_ids(daemon)


def test_a_bad_file_with_a_name_near_the_limit_is_still_quarantined(
    make_daemon: Callable[..., Daemon],
) -> None:
    """Its reason file would pass 255 bytes: the quarantined name is shortened, and the
    reason file keeps the original path."""
    daemon = watch_daemon(make_daemon, polling=False)
    (incoming(daemon) / "Pos0").mkdir(parents=True)
    start(daemon)
    bad = incoming(daemon) / "Pos0" / ("é" * 120 + "_0003.tif")  # 249 bytes
    write_file(bad, b"not a tiff at all")

    daemon.wait_events("rejected", 1, timeout_s=15)
    quarantine = daemon.state_dir / "quarantine"
    assert wait_for(lambda: len(list(quarantine.glob("*.reason.txt"))) == 1, timeout_s=5)
    (reason,) = quarantine.glob("*.reason.txt")
    assert f"original_path: {bad}" in reason.read_text()
    assert reason.with_name(reason.name.removesuffix(".reason.txt")).read_bytes() == (
        b"not a tiff at all"
    )
    assert not bad.exists()
    stop_cleanly(daemon)


def test_the_first_copy_of_a_t_is_the_frame_even_when_it_finishes_last(
    make_daemon: Callable[..., Daemon],
) -> None:
    daemon = watch_daemon(make_daemon, polling=False)
    (incoming(daemon) / "Pos2").mkdir()  # watched from the start: every notice arrives
    start(daemon)
    first = incoming(daemon) / "Pos2" / "z_0005.tif"  # last in path order: the order is time
    second = incoming(daemon) / "Pos2" / "b_0005.tif"
    writer = threading.Thread(
        target=write_in_chunks,
        args=(first, tiff_bytes(image(5))),
        kwargs={"chunks": 4, "pause_s": SETTLE_S / 4},
    )
    writer.start()
    time.sleep(SETTLE_S / 8)  # the first copy is open and growing
    write_file(second, tiff_bytes(image(55)))  # the second copy is closed long before it
    writer.join()

    rejected = daemon.wait_events("rejected", 1, timeout_s=15)
    assert [(e["path"], e["reason"]) for e in rejected] == [(str(second), "duplicate")]
    frames = [e for e in daemon.events("frame") if (e["position"], e["t"]) == ("Pos2", 5)]
    assert [e["path"] for e in frames] == [str(first)]
    stop_cleanly(daemon)


def test_all_bad_files_at_once_with_polling(make_daemon: Callable[..., Daemon]) -> None:
    daemon = start(watch_daemon(make_daemon, polling=True))
    written = {}
    for bad in BAD_FILES:
        path = incoming(daemon) / bad.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        bad.write(path)
        written[bad.name] = path.read_bytes()

    daemon.wait_events("rejected", len(BAD_FILES), timeout_s=20)
    for bad in BAD_FILES:
        assert_rejected_and_quarantined(daemon, bad, written[bad.name])
    expected_counts = {bad.reason: 1.0 for bad in BAD_FILES}
    assert wait_for(lambda: rejected_counts(daemon) == expected_counts, timeout_s=5), (
        rejected_counts(daemon)
    )
    good = incoming(daemon) / "Pos9" / "good_0100.tif"
    write_file(good, tiff_bytes(image(100)))
    assert wait_for(lambda: any(e["path"] == str(good) for e in daemon.events("frame")))
    assert sorted(frame_keys(daemon.events("frame"))) == [("Pos2", 5), ("Pos9", 100)]
    stop_cleanly(daemon)


# --- OME-TIFF, stacks, ordering while writing --------------------------------------------


def test_ome_axes_and_keys_override_config_and_path(make_daemon: Callable[..., Daemon]) -> None:
    daemon = start(watch_daemon(make_daemon, polling=False, axes="YX"))
    folder = incoming(daemon) / "Pos0"

    def ome(pixels: np.ndarray, axes: str, **annotation: str) -> bytes:
        metadata: dict[str, Any] = {"axes": axes}
        if annotation:
            metadata["MapAnnotation"] = annotation
        return tiff_bytes(pixels, ome=True, metadata=metadata)

    files = {
        "zyx_0001.ome.tif": ome(image(1, (3, 16, 16)), "ZYX"),
        "cyx_0002.ome.tif": ome(image(2, (2, 16, 16)), "CYX"),
        "zcyx_0003.ome.tif": ome(image(3, (3, 2, 16, 16)), "ZCYX"),
        "czyx_0004.ome.tif": ome(image(4, (2, 3, 16, 16)), "CZYX"),
        "meta_0005.ome.tif": ome(image(5), "YX", t="7", position="PosX"),
        "acq_0006.ome.tif": ome(image(6), "YX", acquisition="run42", position="PosY", t="3"),
    }
    for name, data in files.items():
        write_file(folder / name, data)

    daemon.wait_events("frame", len(files))
    time.sleep(QUIET_S)
    assert daemon.events("rejected") == []
    by_name = {Path(e["path"]).name: e for e in daemon.events("frame")}
    assert set(by_name) == set(files)
    expected_layout = {
        "zyx_0001.ome.tif": ([3, 16, 16], "ZYX"),
        "cyx_0002.ome.tif": ([2, 16, 16], "CYX"),
        "zcyx_0003.ome.tif": ([3, 2, 16, 16], "ZCYX"),
        "czyx_0004.ome.tif": ([3, 2, 16, 16], "ZCYX"),  # livecell's order: Z before C
    }
    for name, (shape, axes) in expected_layout.items():
        assert (by_name[name]["shape"], by_name[name]["axes"]) == (shape, axes), by_name[name]
        assert (by_name[name]["position"], by_name[name]["t"]) == ("Pos0", int(name[-12:-8]))
    meta = by_name["meta_0005.ome.tif"]
    assert (meta["acquisition"], meta["position"], meta["t"]) == ("incoming", "PosX", 7)
    acq = by_name["acq_0006.ome.tif"]
    assert (acq["acquisition"], acq["position"], acq["t"]) == ("run42", "PosY", 3)
    stop_cleanly(daemon)


def test_multipage_stacks_with_config_axes_zyx(make_daemon: Callable[..., Daemon]) -> None:
    daemon = start(watch_daemon(make_daemon, polling=False, axes="ZYX", settle_s=1.0))
    folder = incoming(daemon) / "Pos0"
    write_file(folder / "shaped_0001.tif", tiff_bytes(image(1, (4, 16, 16))))
    ome_2d = tiff_bytes(image(2), ome=True, metadata={"axes": "YX"})
    write_file(folder / "ome2d_0002.ome.tif", ome_2d)  # OME says YX: the config does not apply

    # A Z stack appended plane by plane, no metadata beyond the pages themselves.
    planes = [image(30 + z) for z in range(5)]
    slow = folder / "planes_0003.tif"
    with open(slow, "wb") as f, tifffile.TiffWriter(f) as writer:
        for plane in planes:
            writer.write(plane, metadata=None, contiguous=False)
            f.flush()
            time.sleep(0.3)
        last_plane_at = time.time()

    daemon.wait_events("frame", 3)
    time.sleep(QUIET_S)
    assert daemon.events("rejected") == []
    by_name = {Path(e["path"]).name: e for e in daemon.events("frame")}
    assert (by_name["shaped_0001.tif"]["shape"], by_name["shaped_0001.tif"]["axes"]) == (
        [4, 16, 16],
        "ZYX",
    )
    assert (by_name["ome2d_0002.ome.tif"]["shape"], by_name["ome2d_0002.ome.tif"]["axes"]) == (
        [16, 16],
        "YX",
    )
    stack = by_name["planes_0003.tif"]
    assert (stack["shape"], stack["axes"]) == ([5, 16, 16], "ZYX")
    assert stack["emitted_at"] > last_plane_at - 0.3
    assert [e["t"] for e in daemon.events("frame")] == [1, 2, 3]
    stop_cleanly(daemon)


def write_ome_stack_pausing_before_close(path: Path, stack: np.ndarray, pause_s: float) -> float:
    """tifffile's OME-TIFF writer, its pixels all written, pausing before it closes the
    file (the OME-XML goes in at the close); return when the file was closed."""
    with tifffile.TiffWriter(path, ome=True) as writer:
        writer.write(stack, metadata={"axes": "CYX"}, photometric="minisblack")
        writer.filehandle.flush()
        time.sleep(pause_s)  # meanwhile the file parses as a one-plane plain TIFF
    return time.time()


def test_an_ome_stack_paused_before_its_close_is_read_whole_at_the_close(
    make_daemon: Callable[..., Daemon],
) -> None:
    settle_s = 0.3
    daemon = start(watch_daemon(make_daemon, polling=False, settle_s=settle_s))
    path = incoming(daemon) / "Pos0" / "img_0001.ome.tif"
    make_folder(path.parent)
    stack = image(1, (4, 32, 32))

    closed_at = write_ome_stack_pausing_before_close(path, stack, pause_s=6 * settle_s)

    frames = daemon.wait_events("frame", 1, timeout_s=15)
    time.sleep(QUIET_S)
    assert len(daemon.events("frame")) == 1, daemon.events()
    assert daemon.events("rejected") == []
    frame = frames[0]
    assert (frame["axes"], frame["shape"]) == ("CYX", [4, 32, 32]), "read before its close"
    assert frame["emitted_at"] >= closed_at - 0.05
    stop_cleanly(daemon)


def test_a_file_whose_close_never_comes_is_read_after_open_wait_s_with_a_warning(
    make_daemon: Callable[..., Daemon],
) -> None:
    open_wait_s = 1.5
    daemon = start(watch_daemon(make_daemon, polling=False, open_wait_s=open_wait_s))
    path = incoming(daemon) / "Pos0" / "img_0001.tif"
    make_folder(path.parent)
    with open(path, "wb") as f:  # a writer that keeps its file open
        f.write(tiff_bytes(image(1)))
        f.flush()
        written_at = time.time()
        frames = daemon.wait_events("frame", 1, timeout_s=open_wait_s + 10)
        assert frames, daemon.log_text()
        assert frames[0]["emitted_at"] >= written_at + open_wait_s - 0.1
        assert frames[0]["shape"] == [16, 16]
    assert "reading a file its writer has not closed" in daemon.log_text()
    time.sleep(QUIET_S)
    assert len(daemon.events("frame")) == 1, "the close after the read gave a second frame"
    stop_cleanly(daemon)


def test_a_file_written_again_at_an_analysed_path_is_not_analysed_and_the_log_says_so(
    make_daemon: Callable[..., Daemon],
) -> None:
    daemon = start(watch_daemon(make_daemon, polling=False))
    path = incoming(daemon) / "Pos0" / "img_0001.tif"
    make_folder(path.parent)
    write_file(path, tiff_bytes(image(1)))
    daemon.wait_events("frame", 1)
    for t in (2, 3):  # a folder reused for a new run
        write_file(path, tiff_bytes(image(t)))
    warning = "a file was written at a path already analysed"
    assert wait_for(lambda: warning in daemon.log_text(), timeout_s=10), daemon.log_text()
    time.sleep(QUIET_S)
    assert len(daemon.events("frame")) == 1
    assert daemon.events("rejected") == []
    assert daemon.log_text().count(warning) == 1, "warned more than once for one path"
    stop_cleanly(daemon)


def test_file_still_being_written_holds_back_later_t_of_its_position_only(
    make_daemon: Callable[..., Daemon],
) -> None:
    daemon = start(watch_daemon(make_daemon, polling=False, settle_s=2.0))
    folder = incoming(daemon)
    data = tiff_bytes(image(1, (256, 256)))
    path = folder / "Pos0" / "img_0001.tif"
    make_folder(folder / "Pos0")
    make_folder(folder / "Pos1")
    with open(path, "wb") as f:
        f.write(data[:1000])
        f.flush()
        time.sleep(0.2)  # the watcher has seen the growing t=1
        write_file(folder / "Pos0" / "img_0002.tif", tiff_bytes(image(2)))
        write_file(folder / "Pos1" / "img_0001.tif", tiff_bytes(image(1)))
        assert daemon.wait_events("frame", 1, timeout_s=0.6), "another position was held back"
        time.sleep(0.2)
        f.write(data[1000:])
        finished_at = time.time()
    daemon.wait_events("frame", 3)
    time.sleep(QUIET_S)
    frames = daemon.events("frame")
    assert frame_keys(frames) == [("Pos1", 1), ("Pos0", 1), ("Pos0", 2)]
    assert frames[0]["emitted_at"] < finished_at
    assert daemon.events("rejected") == []
    stop_cleanly(daemon)


# --- shutdown ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_backlog_exits_0_within_10s_and_restart_completes_exactly_once(
    make_daemon: Callable[..., Daemon], sig: signal.Signals
) -> None:
    daemon = watch_daemon(make_daemon, polling=False)
    for t in range(40):
        write_file(incoming(daemon) / f"Pos{t % 2}" / f"img_{t:04d}.tif", tiff_bytes(image(t)))
    start(daemon)
    assert daemon.proc is not None
    sent_at = time.monotonic()
    daemon.proc.send_signal(sig)
    assert daemon.proc.wait(timeout=10) == 0, daemon.log_text()
    assert time.monotonic() - sent_at < 10
    done_before = len(daemon.events("frame"))  # every line is whole JSON, or this raises
    written = daemon.events_path.read_bytes()
    assert not written or written.endswith(b"\n")  # and the last one was finished

    start(daemon)
    daemon.wait_events("frame", 40)
    time.sleep(QUIET_S)
    stop_cleanly(daemon)
    frames = daemon.events("frame")
    assert sorted(frame_keys(frames)) == sorted((f"Pos{t % 2}", t) for t in range(40))
    assert len(frames) == 40, f"{done_before} before the signal; then duplicates"
    assert_unique_ids(daemon)


def test_file_names_that_are_not_utf8_neither_crash_nor_stall_the_daemon(
    make_daemon: Callable[..., Daemon],
) -> None:
    """Old acquisition PCs write Latin-1 names; the journal stores paths as bytes."""
    daemon = start(watch_daemon(make_daemon, polling=False))
    root = os.fsencode(incoming(daemon))
    odd_file = root + b"/Pos0/caf\xe9_0001.tif"  # a Latin-1 file name, position is fine
    odd_folder = root + b"/Pos\xe91/img_0001.tif"  # a Latin-1 position name: unusable
    for raw in (odd_file, odd_folder):
        os.makedirs(os.path.dirname(raw), exist_ok=True)
        with open(raw, "wb") as f:
            f.write(tiff_bytes(image(1)))
    write_file(incoming(daemon) / "Pos0" / "img_0002.tif", tiff_bytes(image(2)))
    frames = daemon.wait_events("frame", 2)
    assert sorted((e["position"], e["t"]) for e in frames) == [("Pos0", 1), ("Pos0", 2)]
    rejected = daemon.wait_events("rejected", 1)
    assert [e["reason"] for e in rejected] == ["no_position_t"]
    assert "UTF-8" in rejected[0]["detail"]
    assert daemon.proc is not None
    assert daemon.proc.poll() is None
    stop_cleanly(daemon)
    assert len(daemon.events("frame")) == 2
