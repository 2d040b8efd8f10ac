"""``livecell export`` through the real command line, on a model folder as ``train`` writes it."""

from __future__ import annotations

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


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None,
    reason="tensorrt is installed: the GPU tests cover this path",
)
def test_tensorrt_without_the_extra_names_it(model_dir: Path) -> None:
    result = export(str(model_dir), "--tensorrt")
    assert result.returncode == 1
    assert "livecell[tensorrt]" in result.stderr
    assert (model_dir / "model.onnx").exists()
