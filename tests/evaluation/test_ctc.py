"""CTC TRA/DET through py-ctcmetrics, on a hand-made sequence with a division."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from livecell.evaluation import evaluate, main
from livecell.evaluation.ctc import score_ctc
from livecell.evaluation.errors import InputError

FRAMES = 4
# label -> (first frame, last frame, parent, (y, x) of its 6 x 6 square)
LINEAGE = {
    1: (0, 3, 0, (4, 4)),
    2: (0, 1, 0, (4, 30)),
    3: (2, 3, 2, (4, 22)),  # daughters of 2
    4: (2, 3, 2, (20, 30)),
}


def masks(lineage: dict[int, tuple[int, int, int, tuple[int, int]]]) -> list[np.ndarray]:
    out = []
    for t in range(FRAMES):
        image = np.zeros((40, 48), dtype=np.uint16)
        for label, (first, last, _, (y, x)) in lineage.items():
            if first <= t <= last:
                image[y : y + 6, x + t : x + t + 6] = label
        out.append(image)
    return out


def lineage_text(lineage: dict[int, tuple[int, int, int, tuple[int, int]]]) -> str:
    return "".join(f"{k} {b} {e} {p}\n" for k, (b, e, p, _) in sorted(lineage.items()))


def write_truth(folder: Path, position: str = "0") -> Path:
    tra = folder / position / "TRA"
    tra.mkdir(parents=True)
    for t, image in enumerate(masks(LINEAGE)):
        tifffile.imwrite(tra / f"man_track{t:03d}.tif", image)
    (tra / "man_track.txt").write_text(lineage_text(LINEAGE))
    return folder


def write_result(folder: Path, images: list[np.ndarray], text: str) -> Path:
    folder.mkdir(parents=True)
    for t, image in enumerate(images):
        tifffile.imwrite(folder / f"mask{t:03d}.tif", image)
    (folder / "res_track.txt").write_text(text)
    return folder


def test_identical_result_scores_one(tmp_path: Path) -> None:
    truth = write_truth(tmp_path / "ground_truth")
    result = write_result(tmp_path / "RES", masks(LINEAGE), lineage_text(LINEAGE))
    scores = score_ctc("0", truth / "0", result)
    assert scores.valid
    assert scores.tra == 1.0
    assert scores.det == 1.0
    assert scores.aogm == 0.0


def test_relabelled_result_still_scores_one(tmp_path: Path) -> None:
    truth = write_truth(tmp_path / "ground_truth")
    relabel = {1: 7, 2: 5, 3: 9, 4: 8}
    lineage = {relabel[k]: (b, e, relabel.get(p, 0), yx) for k, (b, e, p, yx) in LINEAGE.items()}
    result = write_result(tmp_path / "RES", masks(lineage), lineage_text(lineage))
    assert score_ctc("0", truth / "0", result).tra == 1.0


def test_missed_cell_and_broken_link_lower_tra(tmp_path: Path) -> None:
    truth = write_truth(tmp_path / "ground_truth")
    no_division = {k: (b, e, 0, yx) for k, (b, e, p, yx) in LINEAGE.items()}  # parents lost
    missing = {k: v for k, v in no_division.items() if k != 4}
    result = write_result(tmp_path / "RES", masks(missing), lineage_text(missing))
    scores = score_ctc("0", truth / "0", result)
    assert scores.valid
    assert scores.det is not None
    assert scores.tra is not None
    assert scores.det < 1.0
    assert scores.tra < 1.0


def test_invalid_result_is_reported_not_raised(tmp_path: Path) -> None:
    truth = write_truth(tmp_path / "ground_truth")
    text = lineage_text({k: v for k, v in LINEAGE.items() if k != 4})  # label 4 not listed
    result = write_result(tmp_path / "RES", masks(LINEAGE), text)
    scores = score_ctc("0", truth / "0", result)
    assert not scores.valid
    assert scores.tra is None
    assert any("4" in p for p in scores.problems)


def test_wrong_frame_count_is_reported(tmp_path: Path) -> None:
    truth = write_truth(tmp_path / "ground_truth")
    result = write_result(tmp_path / "RES", masks(LINEAGE)[:2], lineage_text(LINEAGE))
    scores = score_ctc("0", truth / "0", result)
    assert not scores.valid
    assert any("Number of result masks" in p for p in scores.problems)


def test_layouts_through_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = write_truth(tmp_path / "ground_truth", "0")
    write_truth(tmp_path / "ground_truth", "p1")
    (truth / "tracks.csv").write_text("position,t,track,well,x,y,area,cell_type,state\n")
    per_position = tmp_path / "RES"
    write_result(per_position / "0", masks(LINEAGE), lineage_text(LINEAGE))
    write_result(per_position / "p1", masks(LINEAGE), lineage_text(LINEAGE))
    report = evaluate(truth, ctc_results=per_position)
    assert report.ctc is not None
    assert [(c.position, c.tra) for c in report.ctc] == [("0", 1.0), ("p1", 1.0)]
    # One result folder for a two-position ground truth: which position is it?
    single = write_result(tmp_path / "single", masks(LINEAGE), lineage_text(LINEAGE))
    with pytest.raises(InputError, match="2 positions"):
        evaluate(truth, ctc_results=single)
    # A single result folder named as a position is that position.
    report = evaluate(truth, ctc_results=per_position / "p1")
    assert report.ctc is not None
    assert [c.position for c in report.ctc] == ["p1"]
    assert any("no result for position(s) 0" in n for n in report.notes)

    assert main([str(truth), "--ctc", str(per_position)]) == 0
    assert "TRA" in capsys.readouterr().out
