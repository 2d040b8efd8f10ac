"""Nanowell mode end to end: simulated frames through ``livecell replay`` and ``livecell run``."""

from __future__ import annotations

import csv
import re
import shutil
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from daemons import Daemon, livecell, read_events, write_config
from microscope import simulate_nanowell

from livecell.analysis.nanowell import TRACK_ID_BLOCK, open_nanowell_stage, phase_image
from livecell.config import config_from_dict
from livecell.errors import ConfigError
from livecell.evaluation.loaders import load_tracks
from livecell.frames import Frame, FrameKey
from livecell.metrics import Metrics

FRAMES = 8
TRACK_COLUMNS = ["position", "t", "track", "well", "x", "y", "area", "cell_type", "state"]


@pytest.fixture(scope="module")
def acquisition(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nanowell")
    return simulate_nanowell(out, seed=7, frames=FRAMES, size_px=768, wells=3)


def nanowell_config(folder: Path, frames: Path, segmenter: str) -> Path:
    return write_config(
        folder / "livecell.toml",
        {
            "state_dir": "state",
            "source": {"kind": "watch", "path": str(frames), "settle_s": 0.0},
            "analysis": {"mode": "nanowell"},
            "nanowell": {"segmenter": segmenter},
            "metrics": {"address": ""},
        },
    )


def replay(acquisition: Path, folder: Path, segmenter: str = "classical") -> list[dict[str, Any]]:
    folder.mkdir()
    config = nanowell_config(folder, acquisition / "frames", segmenter)
    done = livecell("replay", acquisition / "frames", "-c", config, "--events", "events.jsonl",
                    cwd=folder)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return read_events(folder / "events.jsonl")


def wells_of(acquisition: Path) -> set[str]:
    with open(acquisition / "ground_truth" / "wells.csv", newline="") as f:
        return {row["well"] for row in csv.DictReader(f)}


@pytest.mark.parametrize("segmenter", ["classical", "unet"])
def test_replay_tracks_every_cell_in_its_well(
    acquisition: Path, tmp_path: Path, segmenter: str
) -> None:
    events = replay(acquisition, tmp_path / "out", segmenter)
    kinds = Counter(e["kind"] for e in events)
    assert kinds["frame"] == FRAMES

    with open(tmp_path / "out" / "tracks.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == TRACK_COLUMNS
        rows = list(reader)
    assert {int(r["t"]) for r in rows} == set(range(FRAMES))  # the lag is flushed at the end
    wells = wells_of(acquisition)
    assert {r["well"] for r in rows} <= wells
    well_of_track: dict[str, set[str]] = {}
    for r in rows:
        well_of_track.setdefault(r["track"], set()).add(r["well"])
    assert all(len(w) == 1 for w in well_of_track.values()), "a track crossed a well wall"
    per_frame = Counter((r["track"], r["t"]) for r in rows)
    assert max(per_frame.values()) == 1, "a track has two rows in one frame"
    load_tracks(tmp_path / "out" / "tracks.csv")  # what `livecell evaluate --tracks` reads

    for kind in ("cell_type", "death"):
        tracks = [e["track"] for e in events if e["kind"] == kind]
        assert len(tracks) == len(set(tracks)), f"{kind} emitted twice for a track"
        assert all(e["well"] == next(iter(well_of_track[str(e["track"])]))
                   for e in events if e["kind"] == kind)  # fmt: skip
    for e in events:
        if e["kind"] in ("contact_start", "contact_end"):
            a, b = e["tracks"]
            assert a != b
            assert well_of_track[str(a)] == well_of_track[str(b)] == {e["well"]}


def test_replay_writes_tracks_where_told(acquisition: Path, tmp_path: Path) -> None:
    """--tracks sends the rows elsewhere, so a replay can run beside a daemon that
    writes the config's tracks file."""
    folder = tmp_path / "out"
    folder.mkdir()
    config = nanowell_config(folder, acquisition / "frames", "classical")
    other = tmp_path / "elsewhere" / "replayed_tracks.csv"
    done = livecell("replay", acquisition / "frames", "-c", config, "--events", "events.jsonl",
                    "--tracks", other, cwd=folder)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not (folder / "tracks.csv").exists()
    assert {int(r["t"]) for r in load_rows(other)} == set(range(FRAMES))


def load_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_replay_gives_the_same_event_ids_twice(acquisition: Path, tmp_path: Path) -> None:
    first = replay(acquisition, tmp_path / "first")
    second = replay(acquisition, tmp_path / "second")
    assert [e["event_id"] for e in first if e["kind"] != "frame"] == [
        e["event_id"] for e in second if e["kind"] != "frame"
    ]
    assert len({e["event_id"] for e in first}) == len(first)


def test_replay_gives_the_event_ids_of_a_live_run(
    acquisition: Path, tmp_path: Path, make_daemon: Any
) -> None:
    incoming = tmp_path / "incoming" / "Pos0"
    incoming.mkdir(parents=True)
    daemon = make_daemon(
        source={"kind": "watch", "path": "incoming"},  # complete when closed, as live
        analysis={"mode": "nanowell"},
        nanowell={"segmenter": "unet"},
    ).start()
    daemon.wait_started(timeout_s=60)
    for n, path in enumerate(sorted((acquisition / "frames" / "Pos0").glob("*.tif")), 1):
        shutil.copy(path, incoming / path.name)  # one by one, as the microscope writes them
        daemon.wait_events("frame", n, timeout_s=120)
    assert daemon.stop() == 0
    live = daemon.events()
    assert {e["kind"] for e in live} > {"frame"}, "no analysis events: nothing was compared"

    replayed = replay(acquisition, tmp_path / "replay", "unet")
    assert {e["event_id"] for e in replayed} == {e["event_id"] for e in live}


def test_run_reports_stage_times_in_metrics(acquisition: Path, make_daemon: Any) -> None:
    daemon = make_daemon(
        source={"kind": "watch", "path": str(acquisition / "frames"), "settle_s": 0.0},
        analysis={"mode": "nanowell"},
        nanowell={"segmenter": "classical"},
    ).start()
    daemon.wait_started()
    daemon.wait_events("frame", FRAMES, timeout_s=120)
    with urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics_port}/metrics") as reply:
        text = reply.read().decode()
    for stage in ("wells", "segmentation", "contacts", "tracking", "cell_models"):
        assert f'livecell_stage_seconds_count{{stage="{stage}"}} {FRAMES}.0' in text, stage
    for model in ("nanowell_cell_type", "nanowell_death"):
        counted = re.search(
            rf'livecell_engine_items_total{{backend="onnxruntime",model="{model}"}} (\S+)', text
        )
        assert counted is not None, model
        assert float(counted.group(1)) > 0
    assert daemon.stop() == 0


def watching_daemon(
    acquisition: Path, tmp_path: Path, make_daemon: Any
) -> tuple[Path, list[Path], Daemon]:
    """A nanowell daemon watching an empty ``incoming/Pos0``; the acquisition's frames to
    copy into it, as the microscope writes them."""
    incoming = tmp_path / "incoming" / "Pos0"
    incoming.mkdir(parents=True)
    frames = sorted((acquisition / "frames" / "Pos0").glob("*.tif"))
    daemon = make_daemon(
        source={"kind": "watch", "path": "incoming", "settle_s": 0.0},
        analysis={"mode": "nanowell"},
        nanowell={"segmenter": "classical"},
    )
    return incoming, frames, daemon


def test_a_restart_never_reuses_a_track_or_event_id(
    acquisition: Path, tmp_path: Path, make_daemon: Any
) -> None:
    incoming, frames, daemon = watching_daemon(acquisition, tmp_path, make_daemon)
    half = len(frames) // 2
    for batch, total in ((frames[:half], half), (frames[half:], len(frames))):
        for path in batch:
            shutil.copy(path, incoming / path.name)
        daemon.start().wait_started()
        daemon.wait_events("frame", total, timeout_s=120)
        assert daemon.stop() == 0

    events = daemon.events()
    assert len({e["event_id"] for e in events}) == len(events)
    after = [e for e in events if e["kind"] != "frame" and e["t"] >= half]
    tracks_after = {t for e in after for t in e.get("tracks", [e.get("track")])}
    assert tracks_after, "no track events after the restart: nothing was checked"
    assert min(tracks_after) > half * TRACK_ID_BLOCK
    with open(tmp_path / "tracks.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {int(r["t"]) for r in rows} == set(range(len(frames)))


def test_a_replay_into_a_new_events_file_refuses_a_tracks_file_that_holds_rows(
    acquisition: Path, tmp_path: Path
) -> None:
    """Following the hint "give another --events to analyse them afresh" appended every
    row to the tracks file a second time."""
    first = replay(acquisition, tmp_path / "again")
    assert first, "the first replay wrote nothing"
    folder = tmp_path / "again"
    rows_before = (folder / "tracks.csv").read_bytes()
    done = livecell("replay", acquisition / "frames", "-c", folder / "livecell.toml",
                    "--events", "fresh.jsonl", cwd=folder)  # fmt: skip
    assert done.returncode == 2
    assert "sinks.tracks" in done.stderr
    assert "written a second time" in done.stderr
    assert (folder / "tracks.csv").read_bytes() == rows_before
    done = livecell("replay", acquisition / "frames", "-c", folder / "livecell.toml",
                    "--events", "fresh.jsonl", "--tracks", "fresh.csv", cwd=folder)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (folder / "fresh.csv").read_bytes() == rows_before  # the same rows, once


def test_frames_analysed_again_after_the_events_file_went_get_a_fresh_tracks_file(
    acquisition: Path, tmp_path: Path, make_daemon: Any
) -> None:
    daemon = make_daemon(
        source={"kind": "watch", "path": str(acquisition / "frames"), "settle_s": 0.0},
        analysis={"mode": "nanowell"},
        nanowell={"segmenter": "classical"},
    )
    daemon.start().wait_started()
    daemon.wait_events("frame", FRAMES, timeout_s=120)
    assert daemon.stop() == 0
    first_rows = (tmp_path / "tracks.csv").read_bytes()
    daemon.events_path.unlink()  # the journal is rebuilt and every frame analysed again
    daemon.start().wait_started()
    daemon.wait_events("frame", FRAMES, timeout_s=120)
    assert daemon.stop() == 0
    (aside,) = tmp_path.glob("tracks.csv.before-*")
    assert aside.read_bytes() == first_rows
    with open(tmp_path / "tracks.csv", newline="") as f:
        rows = [(r["position"], r["t"], r["track"]) for r in csv.DictReader(f)]
    assert rows, "no rows after the restart"
    assert len(rows) == len(set(rows)), "a frame's rows were written twice"


def test_an_events_file_deleted_while_running_gets_a_fresh_tracks_file_at_restart(
    acquisition: Path, tmp_path: Path, make_daemon: Any
) -> None:
    """The journal is emptied when the events file goes mid-run, so a restart analyses
    the frames still in the folder again: their rows went into tracks.csv a second time."""
    incoming, frames, daemon = watching_daemon(acquisition, tmp_path, make_daemon)
    half = len(frames) // 2
    for path in frames[:half]:
        shutil.copy(path, incoming / path.name)
    daemon.start().wait_started()
    daemon.wait_events("frame", half, timeout_s=120)
    daemon.events_path.unlink()
    for path in frames[half:]:
        shutil.copy(path, incoming / path.name)
    daemon.wait_events("frame", len(frames) - half, timeout_s=120)  # into the new file
    assert daemon.stop() == 0
    daemon.start().wait_started()
    daemon.wait_events("frame", len(frames), timeout_s=120)  # the first half again
    assert daemon.stop() == 0
    assert len(list(tmp_path.glob("tracks.csv.before-*"))) == 1
    with open(tmp_path / "tracks.csv", newline="") as f:
        rows = [(r["position"], r["t"], r["track"]) for r in csv.DictReader(f)]
    assert rows, "no rows after the restart"
    assert len(rows) == len(set(rows)), "a frame's rows were written twice"


def test_an_apoptosis_hold_as_long_as_the_death_window_is_refused(tmp_path: Path) -> None:
    """The onset is placed within the death model's 24-frame window, so a hold of 24
    frames would never end: the stage refuses it at start-up, naming the key."""
    frames = tmp_path / "frames"
    frames.mkdir()
    settings = {"source": {"path": str(frames)}, "analysis": {"mode": "nanowell"}}
    too_long = settings | {"nanowell": {"death_apoptosis_hold_frames": 24}}
    with pytest.raises(ConfigError, match=r"death_apoptosis_hold_frames.*window \(24 frames\)"):
        open_nanowell_stage(config_from_dict(too_long, base_dir=tmp_path), Metrics())
    stage = open_nanowell_stage(config_from_dict(settings, base_dir=tmp_path), Metrics())
    stage.close()


def test_a_position_the_acquisitions_moved_on_from_is_finished(
    acquisition: Path, tmp_path: Path
) -> None:
    """Its own frames keep a position open; once the next acquisition has had
    ``position_idle_rounds`` frames per open position, the last one is finished: the rows
    its smoothing lag held are written, and its state is gone."""
    settings = {
        "source": {"path": str(tmp_path)},
        "analysis": {"mode": "nanowell"},
        "sinks": {"tracks": "tracks.csv"},
        "nanowell": {"segmenter": "classical", "position_idle_rounds": 2},
    }
    config = config_from_dict(settings, base_dir=tmp_path)
    stage = open_nanowell_stage(config, Metrics())
    images = [tifffile.imread(p) for p in sorted((acquisition / "frames" / "Pos0").glob("*.tif"))]

    def feed(acquisition_name: str, position: str, t: int) -> None:
        key = FrameKey(acquisition_name, position, t)
        stage.update(Frame(key, images[t], "YX", "watch", completed_at=0.0))

    def frames_written(position: str) -> set[int]:
        with open(tmp_path / "tracks.csv", newline="") as f:
            return {int(r["t"]) for r in csv.DictReader(f) if r["position"] == position}

    for t in range(FRAMES):
        feed("first", "A", t)
    held = frames_written("A")
    assert FRAMES - 1 not in held  # the smoothing lag holds the latest frame's rows
    for t in range(4):  # 2 rounds x 2 open positions: still open
        feed("second", "B", t)
    assert stage.open_positions == [("first", "A"), ("second", "B")]
    assert frames_written("A") == held

    feed("second", "B", 4)
    assert stage.open_positions == [("second", "B")]
    assert frames_written("A") == set(range(FRAMES))
    assert stage.overlay(FrameKey("first", "A", FRAMES - 1)) is None
    stage.close()
    assert frames_written("B") == set(range(5))


def test_bad_pixels_take_the_median_and_leave_the_rest_of_the_frame_alone() -> None:
    """A few NaN or infinite pixels must not void a whole frame of wells: the well fit
    refuses any non-finite pixel."""
    rng = np.random.default_rng(0)
    pixels = rng.uniform(100, 200, (2, 64, 64)).astype(np.float32)  # ZYX
    pixels[0, 5:8, 5:8] = np.nan
    pixels[:, 40, 40] = np.inf
    image = phase_image(Frame(FrameKey("a", "P", 0), pixels, "ZYX", "zmq", completed_at=0.0))
    assert np.isfinite(image).all()
    clean = pixels.max(axis=0)
    bad = ~np.isfinite(clean)
    assert np.array_equal(image[~bad], clean[~bad])
    assert np.all(image[bad] == np.median(clean[~bad]))
