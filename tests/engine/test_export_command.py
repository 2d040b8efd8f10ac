"""``livecell export`` through the real command line, on a model folder as ``train`` writes it."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from engine_helpers import PATCH_CLASSES as CLASSES


def export(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "livecell", "export", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_export_writes_onnx_that_matches_torch_at_any_batch(model_dir: Path) -> None:
    result = export(str(model_dir))
    assert result.returncode == 0, result.stderr
    assert "max abs difference" in result.stdout
    assert ": ok" in result.stdout
    session = ort.InferenceSession(
        str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    patches = np.random.default_rng(1).standard_normal((3, 1, 64, 64)).astype(np.float32)
    (probabilities,) = session.run(None, {"patches": patches})
    assert probabilities.shape == (3, len(CLASSES))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_export_without_a_model_card_exits_2(tmp_path: Path) -> None:
    result = export(str(tmp_path))
    assert result.returncode == 2
    assert "model_card.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_of_another_kind_of_model_exits_2_naming_it() -> None:
    from livecell.engine.bundled import bundled_model_dir

    result = export(str(bundled_model_dir("nanowell_death")))
    assert result.returncode == 2
    assert "'sequence death' model" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("breakage", "says"),
    [
        ("card", "is not a readable model card"),
        ("weights", "cannot load"),
        ("--opset 999", "--opset must be"),
        ("--max-batch 0", "--max-batch must be"),
        ("--out folder", "is a folder"),
        ("--out weights", "give an .onnx file"),
    ],
)
def test_export_refuses_a_broken_folder_or_bad_options_in_words(
    model_dir: Path, tmp_path: Path, breakage: str, says: str
) -> None:
    options: list[str] = []
    if breakage == "card":
        (model_dir / "model_card.json").write_text("{")
    elif breakage == "weights":
        (model_dir / "model.pt").write_bytes(b"not torch weights")
    elif breakage == "--out folder":
        options = ["--out", str(tmp_path)]
    elif breakage == "--out weights":
        options = ["--out", str(model_dir / "model.pt")]
    else:
        options = breakage.split()
    result = export(str(model_dir), *options)
    assert result.returncode == 2
    assert says in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None,
    reason="tensorrt is installed: the GPU tests cover this path",
)
def test_tensorrt_without_the_extra_names_it_and_leaves_model_onnx_alone(model_dir: Path) -> None:
    (model_dir / "model.onnx").write_bytes(b"the model.onnx in use")
    result = export(str(model_dir), "--tensorrt")
    assert result.returncode == 1
    assert "livecell[tensorrt]" in result.stderr
    assert (model_dir / "model.onnx").read_bytes() == b"the model.onnx in use"


def test_an_upper_case_onnx_suffix_is_an_onnx_file(model_dir: Path, tmp_path: Path) -> None:
    result = export(str(model_dir), "--out", str(tmp_path / "model.ONNX"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model.ONNX").stat().st_size > 0


def test_an_export_over_the_tolerance_leaves_the_model_onnx_as_it_was(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The new ONNX is checked before it replaces the old one: a failed parity check (here
    a tolerance of 0, which no export meets) leaves the deployed model.onnx untouched."""
    from livecell.engine import export as export_module
    from livecell.engine import export_command

    assert export(str(model_dir)).returncode == 0
    before = (model_dir / "model.onnx").read_bytes()
    monkeypatch.setattr(export_module, "PARITY_TOLERANCE", 0.0)
    parser = argparse.ArgumentParser()
    export_command.add_arguments(parser)  # run in-process: main() would set up logging
    assert export_command.run(parser.parse_args([str(model_dir), "--opset", "18"])) == 1
    assert "left as it was" in capsys.readouterr().err
    assert (model_dir / "model.onnx").read_bytes() == before
    assert sorted(p.name for p in model_dir.iterdir() if p.name.startswith(".")) == []
