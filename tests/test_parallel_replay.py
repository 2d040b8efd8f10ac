"""``livecell replay --workers N``: positions in parallel processes, the same events as one."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from daemons import livecell, read_events, write_config
from microscope import pixels_for, simulate_nanowell, write_tiff

from livecell.config import Config
from livecell.parallel_replay import positions_in, shares

FRAMES = 8


@pytest.fixture(scope="module")
def nanowell_acquisition(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("three_positions")
    return simulate_nanowell(out, seed=5, frames=FRAMES, size_px=512, wells=2, positions=3)


def replay(frames: Path, folder: Path, workers: int) -> tuple[list[dict[str, object]], str]:
    folder.mkdir()
    config = write_config(
        folder / "livecell.toml",
        {
            "state_dir": "state",
            "source": {"kind": "watch", "path": str(frames), "settle_s": 0.0},
            "analysis": {"mode": "nanowell"},
            "nanowell": {"segmenter": "classical"},
            "metrics": {"address": ""},
        },
    )
    done = livecell("replay", frames, "-c", config, "--workers", workers, cwd=folder)
    assert done.returncode == 0, done.stderr
    return read_events(folder / "events.jsonl"), done.stdout


def test_two_workers_give_the_events_of_one(nanowell_acquisition: Path, tmp_path: Path) -> None:
    frames = nanowell_acquisition / "frames"
    one, _ = replay(frames, tmp_path / "one", workers=1)
    two, printed = replay(frames, tmp_path / "two", workers=2)
    assert Counter(e["kind"] for e in two)["frame"] == 3 * FRAMES
    assert {e["event_id"] for e in two} == {e["event_id"] for e in one}
    assert len({e["event_id"] for e in two}) == len(two)
    assert "frame: 24" in printed
    for events in (one, two):  # within a position, the order of a live run
        for position in {e["position"] for e in events}:
            ts = [e["t"] for e in events if e["position"] == position and e["kind"] == "frame"]
            assert ts == sorted(ts)

    def rows(folder: Path) -> list[tuple[str, ...]]:
        with open(folder / "tracks.csv", newline="") as f:
            return sorted(tuple(r) for r in csv.reader(f))

    assert rows(tmp_path / "two") == rows(tmp_path / "one")


def test_a_second_parallel_replay_writes_nothing_again(
    nanowell_acquisition: Path, tmp_path: Path
) -> None:
    frames = nanowell_acquisition / "frames"
    first, _ = replay(frames, tmp_path / "out", workers=3)
    config = tmp_path / "out" / "livecell.toml"
    done = livecell("replay", frames, "-c", config, "--workers", 3, cwd=tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert "no new events" in done.stdout
    assert "give another --events (and --tracks) to analyse them afresh" in done.stdout
    assert read_events(tmp_path / "out" / "events.jsonl") == first


def test_positions_are_dealt_round_robin_and_unkeyed_files_go_to_the_first(
    tmp_path: Path,
) -> None:
    for position in ("Pos2", "Pos0", "Pos1"):
        write_tiff(tmp_path / position / "img_t00001.tif", pixels_for(position, 1))
    (tmp_path / "notes.txt").write_text("not a frame")
    config = Config.model_validate({"source": {"path": str(tmp_path)}})
    found = positions_in(tmp_path, config)
    assert found == ["Pos0", "Pos1", "Pos2"]
    parts = shares(found, 2)
    assert [sorted(p.positions) for p in parts] == [["Pos0", "Pos2"], ["Pos1"]]
    assert [p.unkeyed for p in parts] == [True, False]
    assert len(shares(found, 8)) == 3  # never more workers than positions
    assert parts[0].owns(None)
    assert not parts[1].owns(None)


def test_workers_must_be_positive(tmp_path: Path) -> None:
    config = write_config(tmp_path / "livecell.toml", {"metrics": {"address": ""}})
    done = livecell("replay", tmp_path, "-c", config, "--workers", 0, cwd=tmp_path)
    assert done.returncode == 2
    assert "--workers" in done.stderr
