"""End to end through the contract: ``livecell simulate`` writes ground truth, a perfect
prediction made from it (events, tracks file, CTC folders) scores perfect in every section."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from evaluation_scenes import write_events, write_tracks

from livecell.evaluation import main
from livecell.evaluation.loaders import load_ground_truth
from livecell.evaluation.oracle import perfect_events, perfect_tracks


def simulate(out: Path, *args: str) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "livecell",
            "simulate",
            str(out),
            "--frames",
            "8",
            "--seed",
            "4",
            *args,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out / "ground_truth"


def ctc_copy(ground_truth: Path, results: Path) -> Path:
    """The ground truth's TRA folders, renamed as results: a perfect tracker's CTC output."""
    for tra in ground_truth.glob("*/TRA"):
        res = results / tra.parent.name
        res.mkdir(parents=True)
        for path in tra.iterdir():
            name = (
                "res_track.txt" if path.suffix == ".txt" else path.name.replace("man_track", "mask")
            )
            shutil.copy(path, res / name)
    return results


@pytest.mark.slow
def test_nanowell_truth_against_itself(tmp_path: Path) -> None:
    ground_truth = simulate(tmp_path / "out", "--kind", "nanowell", "--size", "512", "--wells", "2")
    truth = load_ground_truth(ground_truth)
    events = write_events(tmp_path / "events.jsonl", perfect_events(truth))
    tracks = write_tracks(tmp_path / "tracks.csv", perfect_tracks(truth))
    results = ctc_copy(ground_truth, tmp_path / "RES")
    out = tmp_path / "report.json"
    args = [str(ground_truth), "--events", str(events), "--tracks", str(tracks)]
    assert main([*args, "--ctc", str(results), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["tracking"]["overall"]["mota"] == 1.0
    assert report["tracking"]["overall"]["idf1"] == 1.0
    assert all(c["valid"] and c["tra"] == 1.0 and c["det"] == 1.0 for c in report["ctc"])
    assert report["cell_types"]["accuracy"] == 1.0
    assert report["cell_types"]["coverage"] == 1.0
    for section in ("deaths", "contacts"):
        if report[section] is not None and report[section]["truth"]:
            assert report[section]["recall"] == 1.0
            assert report[section]["precision"] == 1.0


@pytest.mark.slow
def test_holotomo_truth_against_itself(tmp_path: Path) -> None:
    ground_truth = simulate(tmp_path / "out", "--kind", "holotomo", "--size", "480", "--mip")
    truth = load_ground_truth(ground_truth)
    events = write_events(tmp_path / "events.jsonl", perfect_events(truth))
    out = tmp_path / "report.json"
    assert main([str(ground_truth), "--events", str(events), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["patches"]["accuracy"] == 1.0
    assert report["patches"]["balanced_accuracy"] == 1.0
    assert report["patches"]["macro_auroc"] in (None, 1.0)
    if report["deaths"] is not None and report["deaths"]["truth"]:
        assert report["deaths"]["recall"] == 1.0
        assert report["deaths"]["pathway_accuracy"] == 1.0
