"""The bundled models: present, small, and their ONNX files agree with their torch weights.

Parity is checked on fresh seeded random inputs and on real data simulated here with
seeds no bundled model trained on: holotomography patches, nanowell track windows,
nanowell contact patches.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from microscope import simulate_nanowell

from livecell.engine.bundled import BUNDLED_MODELS, bundled_model_dir, shipped_models

torch = pytest.importorskip("torch")

MAX_MODEL_MB = 5.0
PARITY_MAX_ABS = 1e-4


def test_every_bundled_model_ships() -> None:
    assert shipped_models() == list(BUNDLED_MODELS)


def test_unknown_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(LookupError, match="holotomo_states"):
        bundled_model_dir("resnet9000")


@pytest.mark.parametrize("name", shipped_models())
def test_each_model_is_small_and_carded(name: str) -> None:
    folder = bundled_model_dir(name)
    for file in ("model.onnx", "model.pt"):
        size_mb = (folder / file).stat().st_size / 1e6
        assert size_mb <= MAX_MODEL_MB, f"{name}/{file} is {size_mb:.1f} MB"
    card = json.loads((folder / "model_card.json").read_text())
    assert card["classes"]
    # the death model's LSTM is retrained on daemon windows by scripts/train_death_head.py
    assert card["command"].startswith(("livecell train", "python scripts/train_death_head.py"))
    assert card["metrics"]["test"]["n"] > 0
    assert name in BUNDLED_MODELS


@pytest.fixture(scope="module")
def holotomo_patches(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """Real 160 px patches (raw refractive index) of a small simulated MIP, seed 99."""
    from livecell.training.datasets import load_simulated

    out = tmp_path_factory.mktemp("sim") / "holo99"
    subprocess.run(
        [
            *(sys.executable, "-m", "livecell", "simulate", str(out), "--kind", "holotomo"),
            *("--mip", "--size", "480", "--frames", "2", "--seed", "99"),
        ],
        check=True,
        capture_output=True,
    )
    return load_simulated(out).images


@pytest.mark.parametrize(
    "name", [n for n in shipped_models() if n.startswith("holotomo")] or ["holotomo_states"]
)
def test_patch_model_onnx_matches_torch(name: str, holotomo_patches: np.ndarray) -> None:
    from livecell.engine.export import check_parity
    from livecell.engine.export_command import parity_inputs
    from livecell.training.train import card_normalisation, load_model

    model, card = load_model(bundled_model_dir(name))
    shape = (card["input"]["channels"], card["input"]["height"], card["input"]["width"])
    real = card_normalisation(card).apply(holotomo_patches)
    assert real.shape[1:] == shape
    worst = check_parity(
        model, bundled_model_dir(name) / "model.onnx", [*parity_inputs(*shape), real]
    )
    assert worst < PARITY_MAX_ABS


def test_patch_mode_runs_the_bundled_model_on_the_torch_backend(
    holotomo_patches: np.ndarray,
) -> None:
    """``[engine] backend = "torch"`` reads the card ``livecell train`` writes (not only the
    backend's short form) and gives ONNX Runtime's probabilities."""
    from livecell.analysis.patches import PatchModel

    folder = bundled_model_dir("holotomo_states")
    on_ort = PatchModel.open(folder, "onnxruntime")
    on_torch = PatchModel.open(folder, "torch")
    try:
        assert on_torch.backend.name == "torch"
        assert on_torch.backend.input_shape == (1, 160, 160)
        expected = on_ort.predict(holotomo_patches)
        assert expected.shape == (len(holotomo_patches), len(on_ort.classes))
        assert np.max(np.abs(on_torch.predict(holotomo_patches) - expected)) < PARITY_MAX_ABS
    finally:
        on_ort.backend.close()
        on_torch.backend.close()


@pytest.fixture(scope="module")
def nanowell_acquisition(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small nanowell acquisition, seed 99: 512 px, 2 x 2 wells, 10 frames."""
    out = tmp_path_factory.mktemp("sim") / "nano99"
    return simulate_nanowell(out, seed=99, frames=10, size_px=512, wells=2)


@pytest.mark.parametrize("name", ["nanowell_cell_type", "nanowell_death"])
def test_sequence_model_onnx_matches_torch(name: str, nanowell_acquisition: Path) -> None:
    from livecell.engine.sequence_export import check_sequence_parity
    from livecell.training.sequence_train import card_sequence_normalisation, load_sequence_model
    from livecell.training.sequences import load_track_sequences

    model, card = load_sequence_model(bundled_model_dir(name))
    spec = card["input"]["crops"]
    windows = load_track_sequences(
        nanowell_acquisition, crop_px=spec["height"], window=spec["window"], stride=spec["window"]
    )
    crops, motion = card_sequence_normalisation(card).apply(windows.crops, windows.motion)
    rng = np.random.default_rng(0)
    onnx_path = bundled_model_dir(name) / "model.onnx"
    worst = max(
        check_sequence_parity(model, onnx_path, crops, motion),
        check_sequence_parity(
            model,
            onnx_path,
            rng.standard_normal(crops[:4].shape).astype(np.float32),
            rng.standard_normal(motion[:4].shape).astype(np.float32),
        ),
    )
    assert worst < PARITY_MAX_ABS


@pytest.fixture(scope="module")
def crowded_acquisition(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seed 98: 1024 px, 4 x 4 wells, 4 frames."""
    out = tmp_path_factory.mktemp("sim") / "nano98"
    return simulate_nanowell(out, seed=98, frames=4, size_px=1024, wells=4)


def test_contact_net_onnx_matches_torch(crowded_acquisition: Path) -> None:
    from livecell.engine.models.contact import ContactCNN
    from livecell.segmentation import UNetSegmenter
    from livecell.tracking.contact_net import ContactNet
    from livecell.training.contact_train import contact_examples

    folder = bundled_model_dir("nanowell_contact")
    card = json.loads((folder / "model_card.json").read_text())
    model = ContactCNN(in_channels=card["model"]["in_channels"], width=card["model"]["width"])
    model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    model.eval()
    with UNetSegmenter.bundled(threads=1) as segmenter:
        real = contact_examples(crowded_acquisition, segmenter, half_px=16).patches
    assert len(real) > 0
    noise = np.random.default_rng(0).standard_normal((4, *real.shape[1:]))
    with ContactNet(folder, threads=1) as net:
        for patches in (real.astype(np.float32), noise.astype(np.float32)):
            with torch.no_grad():
                reference = torch.sigmoid(model(torch.from_numpy(patches)))[:, 0].numpy()
            assert np.max(np.abs(net.probabilities(patches) - reference)) < PARITY_MAX_ABS
