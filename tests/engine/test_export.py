"""ONNX export: parity with torch (fp32 under 1e-4), dynamic batch, opset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from livecell.engine.export import (
    INPUT_NAME,
    OUTPUT_NAME,
    check_parity,
    export_onnx,
    onnx_opset,
    onnx_probabilities,
)

ort = pytest.importorskip("onnxruntime")


def _structured(n: int) -> np.ndarray:
    """Cell-like patches: a bright disc on a dark background, a gradient, a blank."""
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    out = np.zeros((n, 2, 32, 32), dtype=np.float32)
    for i in range(n):
        radius = 4 + i % 10
        disc = ((yy - 16) ** 2 + (xx - 16) ** 2 <= radius**2).astype(np.float32)
        out[i, 0] = disc * (1 + i) * 100.0  # raw-intensity scale, not normalised
        out[i, 1] = (yy + xx) / 62.0 if i % 3 else 0.0
    return out


def test_parity_random(tiny: object, make_patches: Callable[[int], np.ndarray]) -> None:
    worst = check_parity(tiny.model, tiny.onnx, [make_patches(16), make_patches(5) * 10])  # type: ignore[attr-defined]
    assert worst < 1e-4


def test_parity_structured(tiny: object) -> None:
    assert check_parity(tiny.model, tiny.onnx, _structured(12)) < 1e-4  # type: ignore[attr-defined]


@pytest.mark.parametrize("batch", [1, 33])
def test_dynamic_batch(tiny: object, make_patches: Callable[[int], np.ndarray], batch: int) -> None:
    probabilities = onnx_probabilities(tiny.onnx, make_patches(batch))  # type: ignore[attr-defined]
    assert probabilities.shape == (batch, 5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_graph_interface(tiny: object) -> None:
    session = ort.InferenceSession(str(tiny.onnx), providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert inp.name == INPUT_NAME
    assert out.name == OUTPUT_NAME
    assert inp.type == "tensor(float)"
    assert isinstance(inp.shape[0], str)  # symbolic: dynamic batch
    assert inp.shape[1:] == [2, 32, 32]
    assert out.shape[1] == 5


def test_opset(tiny: object, tmp_path: Path) -> None:
    assert onnx_opset(tiny.onnx) >= 17  # type: ignore[attr-defined]
    path = export_onnx(tiny.model, tmp_path / "o18.onnx", in_channels=2, input_size=32, opset=18)  # type: ignore[attr-defined]
    assert onnx_opset(path) == 18
    with pytest.raises(ValueError, match="opset"):
        export_onnx(tiny.model, tmp_path / "o13.onnx", in_channels=2, input_size=32, opset=13)  # type: ignore[attr-defined]


def test_export_keeps_training_flag(tiny: object, tmp_path: Path) -> None:
    model = tiny.model  # type: ignore[attr-defined]
    model.train()
    try:
        export_onnx(model, tmp_path / "m.onnx", in_channels=2, input_size=(32, 32))
        assert model.training
    finally:
        model.eval()


def test_registry_model_parity(tmp_path: Path, make_patches: Callable[[int], np.ndarray]) -> None:
    registry = pytest.importorskip("livecell.engine.models.registry")
    model = registry.build_model("compact", in_channels=2, num_classes=5).eval()
    path = export_onnx(model, tmp_path / "compact.onnx", in_channels=2, input_size=32)
    assert check_parity(model, path, make_patches(8)) < 1e-4
