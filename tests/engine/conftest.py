"""Shared fixtures for the engine tests: a tiny plain-torch CNN and its exported files."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from engine_helpers import PATCH_CLASSES, compact_model

torch = pytest.importorskip("torch")

IN_CHANNELS = 2
SIZE = 32
NUM_CLASSES = 5


def tiny_cnn(seed: int = 0) -> torch.nn.Module:
    """Conv-BN-ReLU x2, global pooling, linear: logits ``[N, 5]`` from ``[N, 2, 32, 32]``.

    Batch-norm statistics are randomised so that eval mode differs from identity.
    """
    generator = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(IN_CHANNELS, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1),
        torch.nn.BatchNorm2d(16),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, NUM_CLASSES),
    )
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
    return model.eval()


@dataclass(frozen=True)
class TinyModel:
    model: torch.nn.Module
    onnx: Path
    program: Path


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    from livecell.engine.export import export_onnx, export_torch_program

    folder = tmp_path_factory.mktemp("tiny")
    model = tiny_cnn()
    onnx = export_onnx(model, folder / "tiny.onnx", in_channels=IN_CHANNELS, input_size=SIZE)
    program = export_torch_program(
        model, folder / "tiny.pt2", in_channels=IN_CHANNELS, input_size=SIZE
    )
    return TinyModel(model=model, onnx=onnx, program=program)


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A generator seeded per test (by its name), created once per test."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def make_patches(rng: np.random.Generator) -> Callable[[int], np.ndarray]:
    """``make_patches(n)``: n random float32 patches the tiny model takes (fresh each call)."""

    def make(n: int) -> np.ndarray:
        return rng.normal(0.0, 1.0, (n, IN_CHANNELS, SIZE, SIZE)).astype(np.float32)

    return make


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """``compact_model()``'s state dict and card, in the layout ``livecell train`` writes."""
    torch.save(compact_model().state_dict(), tmp_path / "model.pt")
    card = {
        "arch": "compact",
        "classes": PATCH_CLASSES,
        "input": {
            "channels": 1,
            "height": 64,
            "width": 64,
            "normalisation": {"mean": [0.0], "std": [1.0]},
        },
    }
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    return tmp_path
