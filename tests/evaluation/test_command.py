"""``livecell evaluate`` from files: the table, --json, --plot, and clear exit 2 for bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from evaluation_scenes import (
    make_scene,
    truth_of,
    write_csv,
    write_events,
    write_tracks,
    write_truth,
)

from livecell.evaluation import evaluate, main
from livecell.evaluation.errors import InputError
from livecell.evaluation.loaders import load_events, load_ground_truth, load_tracks
from livecell.evaluation.oracle import perfect_events, perfect_tracks
from livecell.evaluation.report import format_table
from livecell.evaluation.tables import TRACK_COLUMNS


@pytest.fixture
def acquisition(tmp_path: Path) -> dict[str, Path]:
    scene = make_scene(np.random.default_rng(11), positions=2, frames=6, wells=3)
    truth = truth_of(scene)
    ground_truth = write_truth(tmp_path / "out" / "ground_truth", scene)
    return {
        "ground_truth": ground_truth,
        "events": write_events(tmp_path / "events.jsonl", perfect_events(truth)),
        "tracks": write_tracks(tmp_path / "tracks.csv", perfect_tracks(truth)),
    }


def test_cli_prints_writes_json_and_plots(
    acquisition: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "report.json"
    plots = tmp_path / "plots"
    status = main(
        [
            str(acquisition["ground_truth"]),
            "--events",
            str(acquisition["events"]),
            "--tracks",
            str(acquisition["tracks"]),
            "--json",
            str(out_json),
            "--plot",
            str(plots),
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    for heading in ("Patch states", "Tracking", "Deaths", "Contacts", "Cell types"):
        assert heading in out
    assert "start error, frames: mean +0.00" in out
    assert "end error, frames: mean +0.00" in out
    report = json.loads(out_json.read_text())
    assert report["schema"] == "livecell.evaluation/1"
    assert report["inputs"]["events"] == str(acquisition["events"])
    assert report["tracking"]["overall"]["idf1"] == 1.0
    assert report["patches"]["accuracy"] == 1.0
    assert report["deaths"]["recall"] == 1.0
    names = sorted(p.name for p in plots.iterdir())
    assert "confusion_patch_states.png" in names
    assert "confusion_cell_types.png" in names
    assert "timeline_deaths_0.png" in names
    assert "timeline_patch_states_p1.png" in names
    assert all((plots / n).read_bytes().startswith(b"\x89PNG") for n in names)


def test_undefined_ratios_are_null_in_json(acquisition: dict[str, Path], tmp_path: Path) -> None:
    empty = write_events(tmp_path / "none.jsonl", [])
    report = evaluate(acquisition["ground_truth"], events=empty)
    data = json.loads(report.to_json())
    assert data["deaths"]["precision"] is None  # nothing predicted
    assert data["deaths"]["recall"] == 0.0
    assert data["patches"] is None
    assert any("no patch_states events" in n for n in data["notes"])
    assert "--events: the file holds no events" in data["notes"]


def test_events_with_nothing_to_score_say_what_they_hold(
    acquisition: dict[str, Path], tmp_path: Path
) -> None:
    frame = {"kind": "frame", "event_id": "f1", "position": "0", "t": 0}
    only_frames = write_events(tmp_path / "frames.jsonl", [frame])
    report = evaluate(acquisition["ground_truth"], events=only_frames)
    expected = "--events: no patch_states, death, contact or cell_type events (it holds frame 1)"
    assert expected in report.notes
    assert not any(
        "--events: no" in n
        for n in evaluate(acquisition["ground_truth"], events=acquisition["events"]).notes
    )


def test_tracks_that_mostly_match_no_true_cell_are_questioned(
    acquisition: dict[str, Path], tmp_path: Path
) -> None:
    rows = (acquisition["tracks"]).read_text().splitlines()
    header = rows[0].split(",")
    x, y = header.index("x"), header.index("y")
    moved = [rows[0]]
    for row in rows[1:]:  # every cell 100 px away: another acquisition's tracks
        cols = row.split(",")
        cols[x], cols[y] = str(float(cols[x]) + 100), str(float(cols[y]) + 100)
        moved.append(",".join(cols))
    elsewhere = tmp_path / "elsewhere.csv"
    elsewhere.write_text("\n".join(moved) + "\n")
    questioned = evaluate(acquisition["ground_truth"], tracks=elsewhere).notes
    assert any("are these the tracks of this acquisition?" in n for n in questioned)
    assert not any(
        "are these the tracks" in n
        for n in evaluate(acquisition["ground_truth"], tracks=acquisition["tracks"]).notes
    )


def test_holotomography_ground_truth_with_events_only(tmp_path: Path) -> None:
    """No wells: deaths are reported by patch and matched through the cell in the patch."""
    rows = [
        {
            "position": "A1",
            "t": t,
            "track": k,
            "well": "",
            "x": 80 + 160 * k,
            "y": 80,
            "area": 500,
            "cell_type": "",
            "state": "live",
        }
        for t in range(3)
        for k in (1, 2)
    ]
    folder = tmp_path / "ground_truth"
    folder.mkdir()
    write_csv(folder / "tracks.csv", TRACK_COLUMNS, rows)
    write_csv(
        folder / "deaths.csv",
        ("position", "track", "well", "pathway", "onset_t", "marker_t"),
        [
            {
                "position": "A1",
                "track": 2,
                "well": "",
                "pathway": "necroptosis",
                "onset_t": 1,
                "marker_t": 3,
            }
        ],
    )
    write_csv(
        folder / "contacts.csv", ("position", "well", "track_a", "track_b", "start_t", "end_t"), []
    )
    write_csv(
        folder / "patches.csv",
        ("position", "t", "row", "col", "state"),
        [
            {"position": "A1", "t": t, "row": 0, "col": c, "state": s}
            for t in range(3)
            for c, s in enumerate(("empty", "live_treated", "necroptosis" if t else "live_treated"))
        ],
    )
    truth = load_ground_truth(folder)
    assert truth.tracks is not None
    assert truth.tracks.well.tolist() == [""] * 6
    assert truth.tracks.position[0] == "A1"
    events = write_events(tmp_path / "events.jsonl", perfect_events(truth))
    report = evaluate(folder, events=events)
    assert report.deaths is not None
    assert report.deaths.detected == 1
    assert report.deaths.lead_time.mean == 2.0
    assert report.patches is not None
    assert report.patches.accuracy == 1.0
    assert report.contacts is None  # nothing on either side
    assert "contacts not scored: no contacts in the ground truth nor in the events" in report.notes
    assert report.cell_types is None  # no wells, no cell_type events
    tracked = evaluate(folder, events=events, tracks=folder / "tracks.csv")
    assert "2 cells/field" in format_table(tracked)  # no wells: cells per field of view
    (folder / "tracks.csv").unlink()
    without_tracks = evaluate(folder, events=events)
    assert without_tracks.deaths is not None
    assert without_tracks.deaths.detected == 0
    assert any("patch deaths cannot match" in n for n in without_tracks.notes)


# --- bad input: exit 2, one line, no traceback --------------------------------------------


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = main(args)
    err = capsys.readouterr().err
    return status, err


def test_missing_ground_truth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run_cli([str(tmp_path / "nope"), "--tracks", "x.csv"], capsys)
    assert status == 2
    assert "GROUND_TRUTH_DIR" in err
    assert "is not a folder" in err
    assert "Traceback" not in err


def test_folder_that_is_not_ground_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = run_cli([str(tmp_path), "--tracks", "x.csv"], capsys)
    assert status == 2
    assert "not a ground-truth folder" in err


def test_nothing_to_score(acquisition: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run_cli([str(acquisition["ground_truth"])], capsys)
    assert status == 2
    assert "give at least one result" in err


def test_missing_events_file(
    acquisition: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = run_cli(
        [str(acquisition["ground_truth"]), "--events", str(tmp_path / "missing.jsonl")], capsys
    )
    assert status == 2
    assert "--events" in err
    assert "does not exist" in err


def test_unwritable_json(
    acquisition: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = run_cli(
        [
            str(acquisition["ground_truth"]),
            "--tracks",
            str(acquisition["tracks"]),
            "--json",
            str(tmp_path / "no" / "such" / "dir" / "r.json"),
        ],
        capsys,
    )
    assert status == 2
    assert "--json" in err


def test_bad_option_value(acquisition: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run_cli(
        [str(acquisition["ground_truth"]), "--tracks", "t.csv", "--max-distance", "0"], capsys
    )
    assert status == 2
    assert "--max-distance" in err


def _events_file(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(lines))
    return path


def _death(**fields: Any) -> str:
    base = {"kind": "death", "position": "0", "t": 3, "pathway": "apoptosis", "onset_t": 2}
    return json.dumps({**base, **fields}) + "\n"


def test_event_file_errors_name_the_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="line 2: not JSON"):
        load_events(
            _events_file(
                tmp_path, [_death(well="a", track=1), "{oops\n", _death(well="a", track=2)]
            )
        )
    with pytest.raises(InputError, match=r"line 1.*either well \+ track or patch"):
        load_events(_events_file(tmp_path, [_death()]))
    with pytest.raises(InputError, match=r"line 1.*no 'onset_t'"):
        load_events(_events_file(tmp_path, [_death(well="a", track=1, onset_t=None)]))
    bad_grid = json.dumps(
        {
            "kind": "patch_states",
            "position": "0",
            "t": 0,
            "classes": ["a"],
            "patch_size": 160,
            "grid": [1, 2],
            "states": [[0]],
            "counts": {},
        }
    )
    with pytest.raises(InputError, match="states has shape"):
        load_events(_events_file(tmp_path, [bad_grid + "\n"]))


def test_a_frame_smaller_than_one_patch_is_read_as_an_empty_grid(tmp_path: Path) -> None:
    """The daemon writes ``grid [0, 0], states []`` for such a frame (docs/patches.md)."""
    record = {
        "kind": "patch_states",
        "position": "0",
        "t": 0,
        "classes": ["a"],
        "patch_size": 160,
        "grid": [0, 0],
        "states": [],
        "counts": {"a": 0},
    }
    events = load_events(_events_file(tmp_path, [json.dumps(record) + "\n"]))
    (states,) = events.patch_states
    assert states.states.shape == (0, 0)


def test_event_file_tolerates_a_cut_last_line_and_duplicates(tmp_path: Path) -> None:
    first = _death(well="a", track=1, event_id="x1")
    events = load_events(_events_file(tmp_path, [first, first, '{"kind": "dea']))
    assert len(events.deaths) == 1
    assert events.kinds_seen == {"death": 1}


@pytest.mark.parametrize("cut_at", [9, 25])  # inside a number; inside the state
def test_tracks_file_leaves_out_a_last_row_cut_short(tmp_path: Path, cut_at: int) -> None:
    header_and_row = ",".join(TRACK_COLUMNS) + "\n0,6,1,a,100,100,1,target,live\n"
    last_row = "0,7,1,a,100,100,1,target,live\n"
    path = tmp_path / "tracks.csv"
    path.write_text(header_and_row + last_row[:cut_at])
    assert load_tracks(path).t.tolist() == [6]  # the row being written is not read (nor misread)
    path.write_text(header_and_row + last_row)
    assert load_tracks(path).t.tolist() == [6, 7]


def test_a_zero_byte_tracks_file_is_an_empty_table(tmp_path: Path) -> None:
    path = tmp_path / "tracks.csv"
    path.write_bytes(b"")
    assert len(load_tracks(path)) == 0


def test_csv_errors_name_file_column_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "ground_truth"
    folder.mkdir()
    (folder / "deaths.csv").write_text("position,track,well,pathway,onset_t\n")
    with pytest.raises(InputError, match=r"deaths\.csv: missing column\(s\) marker_t"):
        load_ground_truth(folder)
    (folder / "deaths.csv").write_text(
        "position,track,well,pathway,onset_t,marker_t\n0,1,a,apoptosis,3,4\n0,x,a,apoptosis,3,4\n"
    )
    with pytest.raises(InputError, match="line 3: track 'x' is not an integer"):
        load_ground_truth(folder)
    (folder / "deaths.csv").write_text(
        "position,track,well,pathway,onset_t,marker_t\n007,1,a,apoptosis,3\n"
    )
    with pytest.raises(InputError, match="line 2: has not the 6 columns"):
        load_ground_truth(folder)
    (folder / "deaths.csv").write_text(
        "position,track,well,pathway,onset_t,marker_t\n007,1,a,apoptosis,3,4\n"
    )
    truth = load_ground_truth(folder)
    assert truth.deaths is not None
    assert truth.deaths[0].position == "007"
    assert truth.tracks is None
