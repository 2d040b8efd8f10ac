"""End to end on a simulated nanowell acquisition: ``livecell track`` scored by
``livecell evaluate --ctc``, and the tracker on ground-truth masks through the bench."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from microscope import simulate_nanowell

pytest.importorskip("ctc_metrics")
pytest.importorskip("motmetrics")


@pytest.fixture(scope="module")
def acquisition(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate_nanowell(tmp_path_factory.mktemp("sim") / "seed84", seed=84, frames=6)


def test_track_writes_ctc_results_that_score_well(acquisition: Path, tmp_path: Path) -> None:
    from livecell.evaluation.scoring import evaluate
    from livecell.tracking.command import main

    res = tmp_path / "res"
    assert main([str(acquisition / "ground_truth" / "Pos0" / "TRA"), "--out", str(res)]) == 0
    assert len(list(res.glob("mask*.tif"))) == 6
    report = evaluate(acquisition / "ground_truth", ctc_results=res)
    assert report.ctc is not None
    (scores,) = report.ctc
    assert scores.valid
    assert scores.det == pytest.approx(1.0)
    assert scores.tra is not None
    assert scores.tra > 0.9


def test_track_refuses_a_folder_without_masks(tmp_path: Path) -> None:
    from livecell.tracking.command import main

    assert main([str(tmp_path), "--out", str(tmp_path / "res")]) == 2


def _masks(folder: Path, *arrays: np.ndarray) -> Path:
    folder.mkdir()
    for t, labels in enumerate(arrays):
        tifffile.imwrite(folder / f"mask{t:03d}.tif", labels)
    return folder


@pytest.mark.parametrize(
    ("second", "out_is_input", "options", "message"),
    [
        (np.zeros((80, 80), np.uint16), False, [], "is 80 x 80, the first mask 64 x 64"),
        (np.full((64, 64), -3, np.int16), False, [], "negative labels"),
        (np.zeros((64, 64), np.uint16), True, [], "--out is the MASKS folder"),
        (np.zeros((64, 64), np.uint16), False, ["--max-link-distance", "-1"], "positive"),
    ],
)
def test_track_refuses_bad_masks_and_options_naming_them(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    second: np.ndarray,
    out_is_input: bool,
    options: list[str],
    message: str,
) -> None:
    from livecell.tracking.command import main

    first = np.zeros((64, 64), np.uint16)
    first[10:20, 10:20] = 7
    masks = _masks(tmp_path / "masks", first, second)
    before = {p.name: p.read_bytes() for p in masks.iterdir()}
    out = masks if out_is_input else tmp_path / "res"
    assert main([str(masks), "--out", str(out), *options]) == 2
    assert message in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in masks.iterdir()} == before
    assert not (tmp_path / "res").exists()


def _disc(t: int, label: int = 5) -> np.ndarray:
    """A 48 x 48 mask with one disc that moves 2 px per frame."""
    rows, cols = np.mgrid[:48, :48]
    labels = np.zeros((48, 48), np.uint16)
    labels[(rows - 24) ** 2 + (cols - 10 - 2 * (t % 10)) ** 2 <= 16] = label
    return labels


def test_track_orders_frames_by_number_and_names_results_past_999_with_four_digits(
    tmp_path: Path,
) -> None:
    from livecell.tracking.command import main

    masks = tmp_path / "masks"
    masks.mkdir()
    for t in (998, 999, 1000, 1001):  # by name, mask1000.tif sorts before mask998.tif
        tifffile.imwrite(masks / f"mask{t}.tif", _disc(t))
    res = tmp_path / "res"
    assert main([str(masks), "--out", str(res)]) == 0
    names = sorted(p.name for p in res.glob("mask*.tif"))
    assert names == ["mask0998.tif", "mask0999.tif", "mask1000.tif", "mask1001.tif"]
    assert (res / "res_track.txt").read_text() == "1 998 1001 0\n", "one track, in frame order"
    for t in (998, 1001):
        assert np.array_equal(tifffile.imread(res / f"mask{t:04d}.tif") > 0, _disc(t) > 0)


def test_track_refuses_a_frame_number_given_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from livecell.tracking.command import main

    masks = tmp_path / "masks"
    masks.mkdir()
    for t, name in enumerate(["man_seg1.tif", "man_seg001.tif"]):
        tifffile.imwrite(masks / name, _disc(t))
    assert main([str(masks), "--out", str(tmp_path / "res")]) == 2
    assert "are both frame 1" in capsys.readouterr().err
    assert not (tmp_path / "res").exists()


def test_track_across_missing_frames_keeps_the_frame_numbers_and_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from livecell.tracking.command import main

    masks = tmp_path / "masks"
    masks.mkdir()
    for t in (0, 1, 2, 4, 5):  # frame 3 was not annotated
        tifffile.imwrite(masks / f"man_seg{t:03d}.tif", _disc(t))
    res = tmp_path / "res"
    assert main([str(masks), "--out", str(res), "--max-missed-frames", "1"]) == 0
    assert "no masks for frame(s) 3" in capsys.readouterr().err
    names = sorted(p.name for p in res.glob("mask*.tif"))
    assert names == ["mask000.tif", "mask001.tif", "mask002.tif", "mask004.tif", "mask005.tif"]
    # one cell, its gap a new segment whose parent is the first (the Challenge's rule)
    assert (res / "res_track.txt").read_text() == "1 0 2 0\n2 4 5 1\n"


def test_track_into_a_used_result_folder_leaves_no_mask_of_the_earlier_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from livecell.tracking.command import main

    long, short, res = tmp_path / "long", tmp_path / "short", tmp_path / "res"
    _masks(long, *[_disc(t) for t in range(12)])
    _masks(short, *[_disc(t, label=9) for t in range(10)])
    assert main([str(long), "--out", str(res)]) == 0
    assert main([str(short), "--out", str(res)]) == 0
    assert "removed 13 file(s) of an earlier result" in capsys.readouterr().out
    assert sorted(p.name for p in res.glob("mask*.tif")) == [f"mask{t:03d}.tif" for t in range(10)]
    assert (res / "res_track.txt").read_text() == "1 0 9 0\n"


def test_tracker_on_ground_truth_masks_tracks_small_wells_almost_perfectly(
    acquisition: Path, tmp_path: Path
) -> None:
    from livecell.bench.tracking import score_tracks, track_truth_masks, write_tracks

    rows, _ = track_truth_masks(acquisition / "ground_truth")
    path = tmp_path / "tracks.csv"
    write_tracks(path, rows)
    groups = {g.cells: g for g in score_tracks(acquisition / "ground_truth", path)}
    assert groups[(1, 2)].mota > 0.97
    assert groups[(3, 5)].mota > 0.85


def test_bench_scale_section_prints_its_table() -> None:
    from livecell.bench.tracking import main

    assert main(["--sections", "scale", "--wells", "40", "--scale-frames", "1"]) == 0
