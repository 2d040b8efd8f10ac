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
