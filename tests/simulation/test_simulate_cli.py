"""``livecell simulate`` end to end: files as a microscope writes them, truth matching pixels.

Small acquisitions (512 px, 2 x 2 wells, a few frames) through the real command
line; the ground truth is checked against the written label images, the frames
against livecell's own TIFF reader, and the CTC folders against the Cell
Tracking Challenge's own validator.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from daemons import read_events, write_config

from livecell.stream.tiff import inspect_tiff, load_frame_pixels

FRAMES = 8


def livecell(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``livecell ARGS`` as a subprocess; the caller checks its outcome."""
    return subprocess.run(
        [sys.executable, "-m", "livecell", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def simulate(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = livecell("simulate", out, *args)
    assert result.returncode == 0, result.stderr
    return result


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def nanowell(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nanowell")
    simulate(
        out,
        "--kind",
        "nanowell",
        "--frames",
        str(FRAMES),
        "--size",
        "512",
        "--wells",
        "2",
        "--positions",
        "2",
        "--seed",
        "3",
        "--preview",
    )
    return out


@pytest.fixture(scope="module")
def holotomo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("holotomo")
    simulate(out, "--kind", "holotomo", "--frames", "4", "--size", "480", "--z", "8", "--seed", "5")
    return out


def test_files_are_ome_tiffs_livecell_reads_with_position_and_t(nanowell: Path) -> None:
    files = sorted((nanowell / "frames").rglob("*.ome.tif"))
    assert len(files) == FRAMES * 2
    for path in files[:3]:
        layout = inspect_tiff(path, default_axes="ZYX")  # OME-XML must win over the config
        assert layout.axes == "YX"
        assert layout.ome is not None
        assert layout.ome.position == path.parent.name
        assert layout.ome.t == int(path.name[1:6])
        assert layout.ome.pixel_size_um == pytest.approx(0.325)
        pixels = load_frame_pixels(layout, memmap=False)
        assert pixels.dtype == np.uint16
        assert pixels.shape == (512, 512)


def test_tracks_csv_matches_the_label_images(nanowell: Path) -> None:
    truth = nanowell / "ground_truth"
    by_frame: dict[tuple[str, int], list[dict[str, str]]] = defaultdict(list)
    for row in rows(truth / "tracks.csv"):
        by_frame[(row["position"], int(row["t"]))].append(row)
    assert by_frame, "no tracked cells at all"
    for (position, t), cells in by_frame.items():
        labels = tifffile.imread(truth / position / "TRA" / f"man_track{t:03d}.tif")
        present = set(np.unique(labels)) - {0}
        assert present == {int(c["track"]) for c in cells}
        for cell in cells:
            ys, xs = np.nonzero(labels == int(cell["track"]))
            assert int(cell["area"]) == len(xs)
            assert float(cell["x"]) == pytest.approx(xs.mean(), abs=1e-3)
            assert float(cell["y"]) == pytest.approx(ys.mean(), abs=1e-3)


def test_wells_contain_their_cells(nanowell: Path) -> None:
    truth = nanowell / "ground_truth"
    wells = {(w["position"], w["well"]): w for w in rows(truth / "wells.csv")}
    assert len({w for (_, w) in wells}) == 4
    for row in rows(truth / "tracks.csv"):
        well = wells[(row["position"], row["well"])]
        # the well box is at t = 0; stage drift moves it by a few pixels
        margin = 24
        assert int(well["x0"]) - margin <= float(row["x"]) <= int(well["x1"]) + margin
        assert int(well["y0"]) - margin <= float(row["y"]) <= int(well["y1"]) + margin


def test_stage_csv_gives_each_frame_its_drift_and_holotomo_has_none(
    nanowell: Path, holotomo: Path
) -> None:
    stage = rows(nanowell / "ground_truth" / "stage.csv")
    frames = {(r["position"], r["t"]) for r in rows(nanowell / "ground_truth" / "tracks.csv")}
    assert sorted((r["position"], r["t"]) for r in stage) == sorted(frames)
    assert all(float(r["dx_px"]) == float(r["dy_px"]) == 0.0 for r in stage if r["t"] == "0")
    assert any(float(r["dx_px"]) != 0.0 for r in stage)
    assert not (holotomo / "ground_truth" / "stage.csv").exists()


def test_deaths_and_contacts_are_consistent_with_states(nanowell: Path) -> None:
    truth = nanowell / "ground_truth"
    states: dict[tuple[str, int], list[tuple[int, str]]] = defaultdict(list)
    for row in rows(truth / "tracks.csv"):
        states[(row["position"], int(row["track"]))].append((int(row["t"]), row["state"]))
    for death in rows(truth / "deaths.csv"):
        history = sorted(states[(death["position"], int(death["track"]))])
        assert int(death["marker_t"]) > int(death["onset_t"])
        for t, state in history:
            assert state == (death["pathway"] if t >= int(death["onset_t"]) else "live")
    contacts = rows(truth / "contacts.csv")
    assert contacts, "the fixture's acquisition has contacts to check"
    for contact in contacts:
        assert int(contact["track_a"]) < int(contact["track_b"])
        assert int(contact["start_t"]) <= int(contact["end_t"])


def test_ctc_folders_pass_the_challenge_validator(nanowell: Path, tmp_path: Path) -> None:
    """``ctc_validate`` reads result folders; give it each TRA folder in that layout."""
    validator = shutil.which("ctc_validate")
    if validator is None:
        pytest.skip("py-ctcmetrics not installed (pip install -e .[eval])")
    for position in ("Pos0", "Pos1"):
        tra = nanowell / "ground_truth" / position / "TRA"
        res = tmp_path / position / "RES"
        res.mkdir(parents=True)
        for mask in sorted(tra.glob("man_track*.tif")):
            shutil.copy(mask, res / mask.name.replace("man_track", "mask"))
        shutil.copy(tra / "man_track.txt", res / "res_track.txt")
        result = subprocess.run(
            [validator, "--res", str(res), "-n", "1"], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert re.search(r"Valid: 1(\.0)?\b", result.stdout), result.stdout


def test_preview_pictures_are_written(nanowell: Path) -> None:
    pictures = sorted((nanowell / "preview").glob("*.png"))
    assert [p.name for p in pictures] == [
        "Pos0_t00000.png",
        f"Pos0_t{FRAMES // 2:05d}.png",
        f"Pos0_t{FRAMES - 1:05d}.png",
    ]


def test_same_seed_same_pixels(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        simulate(
            out,
            "--kind",
            "nanowell",
            "--frames",
            "2",
            "--size",
            "256",
            "--wells",
            "1",
            "--seed",
            "11",
        )
    for name in ("Pos0/t00000.ome.tif", "Pos0/t00001.ome.tif"):
        np.testing.assert_array_equal(
            tifffile.imread(a / "frames" / name), tifffile.imread(b / "frames" / name)
        )
    assert (a / "ground_truth/tracks.csv").read_text() == (
        b / "ground_truth/tracks.csv"
    ).read_text()


def test_holotomo_patches_csv_covers_the_grid(holotomo: Path) -> None:
    patches = rows(holotomo / "ground_truth" / "patches.csv")
    per_frame: dict[tuple[str, int], int] = defaultdict(int)
    for row in patches:
        per_frame[(row["position"], int(row["t"]))] += 1
        assert row["state"] in (
            "live_control",
            "live_treated",
            "apoptosis",
            "necroptosis",
            "necrosis",
            "empty",
        )
    assert set(per_frame.values()) == {9}  # 480 px // 160 px = 3 x 3 patches
    volume = tifffile.imread(holotomo / "frames" / "Pos0" / "t00000.ome.tif")
    assert volume.shape == (8, 480, 480)
    assert volume.dtype == np.float32


def test_replay_of_the_frames_gives_one_frame_event_per_file(
    nanowell: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "c.toml",
        {"source": {"path": str(nanowell / "frames")}, "metrics": {"address": ""}},
    )
    events = tmp_path / "events.jsonl"
    result = livecell("replay", nanowell / "frames", "-c", config, "--events", events)
    assert result.returncode == 0, result.stderr
    frames: list[dict[str, Any]] = [e for e in read_events(events) if e["kind"] == "frame"]
    assert len(frames) == FRAMES * 2
    assert {e["acquisition"] for e in frames} == {nanowell.name}
    assert sorted((e["position"], e["t"]) for e in frames) == sorted(
        (p, t) for p in ("Pos0", "Pos1") for t in range(FRAMES)
    )


def test_bad_arguments_exit_2_naming_them(tmp_path: Path) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    for out, args, named in (
        (tmp_path, ["--kind", "holotomo", "--wells", "3"], "--wells"),
        (tmp_path, ["--kind", "nanowell", "--frames", "0"], "--frames"),
        (tmp_path, ["--kind", "nanowell", "--seed", "-1"], "--seed"),
        (tmp_path, ["--kind", "nanowell", "--interval", "inf"], "--interval"),
        (tmp_path, ["--kind", "nanowell", "--params", str(tmp_path)], "--params"),
        (tmp_path / "z", ["--kind", "nanowell", "--frames", "1", "--zmq", "nowhere"], "--zmq"),
        (a_file, ["--kind", "nanowell"], "OUT: "),
    ):
        result = livecell("simulate", out, *args)
        assert result.returncode == 2
        assert named in result.stderr
        assert "Traceback" not in result.stderr


def test_a_shorter_simulation_into_the_same_folder_leaves_nothing_of_the_longer(
    tmp_path: Path,
) -> None:
    out = tmp_path / "sim"
    args = ["--kind", "nanowell", "--size", "512", "--wells", "2", "--seed", "4"]
    simulate(out, *args, "--frames", "4")
    mine = out / "frames" / "notes.txt"  # not the simulator's: left alone
    mine.write_text("kept")
    again = simulate(out, *args, "--frames", "2")
    assert "earlier simulation" in again.stdout
    assert sorted(p.name for p in (out / "frames" / "Pos0").iterdir()) == [
        "t00000.ome.tif",
        "t00001.ome.tif",
    ]
    masks = sorted(p.name for p in (out / "ground_truth" / "Pos0" / "TRA").glob("*.tif"))
    assert masks == ["man_track000.tif", "man_track001.tif"]
    assert {int(r["t"]) for r in rows(out / "ground_truth" / "tracks.csv")} == {0, 1}
    assert mine.read_text() == "kept"


def test_params_file_sets_knobs_and_rejects_unknown_ones(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("max_cells_per_well = 2\n")
    shown = livecell(
        "simulate", tmp_path / "o", "--kind", "nanowell", "--params", good, "--show-params"
    )
    assert shown.returncode == 0, shown.stderr
    assert "max_cells_per_well = 2" in shown.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("max_cells_per_wel = 2\n")
    result = livecell("simulate", tmp_path / "o", "--kind", "nanowell", "--params", bad)
    assert result.returncode == 2
    assert "max_cells_per_wel" in result.stderr


def test_zmq_output_feeds_a_running_daemon(make_daemon: Any, tmp_path: Path) -> None:
    from daemons import free_port

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    daemon = make_daemon(source={"kind": "zmq", "endpoint": endpoint})
    daemon.start()
    daemon.wait_started()
    simulate(
        tmp_path / "zmq-run",
        "--kind",
        "nanowell",
        "--frames",
        "3",
        "--size",
        "256",
        "--wells",
        "1",
        "--zmq",
        endpoint,
    )
    frames = daemon.wait_events("frame", 3)
    assert sorted(e["t"] for e in frames) == [0, 1, 2]
    assert {e["source"] for e in frames} == {"zmq"}
    assert not (tmp_path / "zmq-run" / "frames").exists()
    assert (tmp_path / "zmq-run" / "ground_truth" / "tracks.csv").exists()
    assert daemon.stop() == 0
