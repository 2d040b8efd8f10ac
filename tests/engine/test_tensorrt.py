"""TensorRT engine builder and backend: run where ``tensorrt`` imports and a GPU exists.

The shared backend suite (``test_backends.py``) also runs the TensorRT backend there; these
check the builder's cache and fp16 accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from livecell.engine.backends.select import tensorrt_usable

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not tensorrt_usable()[0], reason=tensorrt_usable()[1]),
]


def test_engine_is_built_once(tiny: object, tmp_path: Path) -> None:
    from livecell.engine.tensorrt_build import build_engine

    first = build_engine(tiny.onnx, max_batch=16, cache_dir=tmp_path)  # type: ignore[attr-defined]
    stamp = first.stat().st_mtime_ns
    second = build_engine(tiny.onnx, max_batch=16, cache_dir=tmp_path)  # type: ignore[attr-defined]
    assert first == second
    assert second.stat().st_mtime_ns == stamp
    assert any(tmp_path.glob("timing-*.cache"))


def test_fp16_close_to_torch(
    tiny: object, tmp_path: Path, make_patches: Callable[[int], np.ndarray]
) -> None:
    from livecell.engine.backends import open_backend
    from livecell.engine.export import torch_probabilities

    x = make_patches(70)
    with open_backend("tensorrt", tiny.onnx, max_batch=32, cache_dir=tmp_path) as backend:  # type: ignore[attr-defined]
        got = backend.predict(x)
    reference = torch_probabilities(tiny.model, x)  # type: ignore[attr-defined]
    assert got.shape == (70, 5)
    assert float(np.max(np.abs(got - reference))) < 1e-2


def test_the_daemons_engine_cache_dir_is_where_engines_are_built(
    tiny: object, tmp_path: Path, make_patches: Callable[[int], np.ndarray]
) -> None:
    from livecell.engine.backends import open_backend

    cache = tmp_path / "state" / "engine"
    with open_backend("tensorrt", tiny.onnx, max_batch=8, engine_cache_dir=cache) as backend:  # type: ignore[attr-defined]
        assert backend.predict(make_patches(3)).shape == (3, 5)
    assert list(cache.rglob("*.engine")), "the engine was built somewhere else"
