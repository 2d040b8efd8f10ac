"""The tracks file: SPEC columns, read back by the evaluation loader, appended across restarts."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from disk import file_size_limit

from livecell.errors import OutputWriteError
from livecell.evaluation.loaders import load_tracks
from livecell.sinks import EventLogLocked
from livecell.sinks.tracks_csv import COLUMNS, TrackRow, TracksFile


def row(t: int, track: int) -> TrackRow:
    return TrackRow("Pos0", t, track, "r000c001", 10.25 + t, 20.5, 300.0, "target", "live")


def test_rows_round_trip_through_the_evaluation_loader(tmp_path: Path) -> None:
    path = tmp_path / "tracks.csv"
    out = TracksFile(path)
    out.write([row(0, 1), row(0, 2)])
    out.write([])
    out.write([row(1, 1)])
    out.close()
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        rows = list(reader)
    assert [(r["t"], r["track"], r["x"]) for r in rows] == [
        ("0", "1", "10.250"),
        ("0", "2", "10.250"),
        ("1", "1", "11.250"),
    ]
    load_tracks(path)


def test_a_restart_appends_without_a_second_header(tmp_path: Path) -> None:
    path = tmp_path / "tracks.csv"
    for t in range(2):
        out = TracksFile(path)
        out.write([row(t, 1)])
        out.close()
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert len(lines) == 3
    assert lines.count(lines[0]) == 1


def test_a_second_writer_is_refused_while_the_first_holds_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tracks.csv"
    first = TracksFile(path)
    with pytest.raises(EventLogLocked, match="another livecell process"):
        TracksFile(path)
    first.close()
    TracksFile(path).close()  # free again once the first is closed


def test_a_write_that_fails_part_way_is_cut_back_and_names_the_file(tmp_path: Path) -> None:
    """A full disk (here the file-size limit) mid-batch leaves no partial row for the
    next write to join, and the error is an OutputWriteError naming the file."""
    path = tmp_path / "tracks.csv"
    tracks = TracksFile(path)
    tracks.write([row(0, 1)])
    with file_size_limit(path.stat().st_size + 100), pytest.raises(OutputWriteError) as failed:
        tracks.write([row(t, 1) for t in range(1, 50)])
    assert failed.value.filename == str(path)
    tracks.write([row(99, 1)])
    tracks.close()
    assert [r["t"] for r in csv.DictReader(path.read_text().splitlines())] == ["0", "99"]


def test_appending_another_file_that_fails_part_way_leaves_none_of_it(tmp_path: Path) -> None:
    """A parallel replay joins each worker's rows into one file, a megabyte at a time: a
    failure after the first megabyte is cut back to where the append began."""
    other = TracksFile(tmp_path / "worker.csv")
    other.write([row(t, track) for t in range(200) for track in range(150)])  # > 1 MiB
    other.close()
    assert (tmp_path / "worker.csv").stat().st_size > 1 << 20
    path = tmp_path / "tracks.csv"
    tracks = TracksFile(path)
    tracks.write([row(0, 1)])
    before = path.read_bytes()
    with file_size_limit(len(before) + (1 << 20) + 500), pytest.raises(OutputWriteError):
        tracks.append_rows_of(tmp_path / "worker.csv")
    tracks.close()
    assert path.read_bytes() == before
