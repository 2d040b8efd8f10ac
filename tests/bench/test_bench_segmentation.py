"""The segmentation benchmark runs end to end on one held-out frame and prints its table."""

from __future__ import annotations

from pathlib import Path

import pytest

from livecell.bench.segmentation import main


@pytest.mark.slow
def test_the_table_has_both_segmenters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "71", "--frames", "1", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "cells/well" in line)
    assert header.split()[-2:] == ["unet", "classical"]
    assert "ms/well" in out
    assert " all " in out
    assert (tmp_path / "nano71-1frames" / "ground_truth" / "wells.csv").is_file()
    # a kept simulation is reused only for the same length: 2 frames simulate anew
    assert main(["--seeds", "71", "--frames", "2", "--workdir", str(tmp_path)]) == 0
    assert (tmp_path / "nano71-2frames" / "ground_truth" / "wells.csv").is_file()
    assert "one frame in 8 of 2" in capsys.readouterr().out
