"""Patch classifier training: model card, confusion, weights-only reload, resume, command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from training_helpers import tiny_cnn, write_tree

from livecell.training import command
from livecell.training import train as training
from livecell.training.datasets import PatchSet, load_folder_tree

CONFIG = training.TrainConfig(arch="tiny", epochs=2, batch_size=8, patience=5, seed=4)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data") / "tree"
    return write_tree(root, np.random.default_rng(0), images_per_class=6)


@pytest.fixture(scope="module")
def data(tree: Path) -> PatchSet:
    return load_folder_tree(tree, patch_size=32)


def _train(data: PatchSet, out: Path, **kwargs: object) -> training.TrainResult:
    opts: dict[str, object] = {"model_factory": tiny_cnn, "progress": False, **kwargs}
    return training.train(data, opts.pop("config", CONFIG), out, **opts)  # type: ignore[arg-type]


def test_training_writes_model_card_and_confusion(data: PatchSet, tmp_path: Path) -> None:
    result = _train(data, tmp_path, argv=["livecell", "train", "tree"])
    for name in ("model.pt", "model_card.json", "checkpoint.pt", "confusion_test.png"):
        assert (tmp_path / name).is_file()
    card = json.loads((tmp_path / "model_card.json").read_text())
    assert card == result.card
    assert card["classes"] == ["bright", "dark"]
    assert card["input"]["channels"] == 1
    assert card["input"]["height"] == 32
    assert len(card["input"]["normalisation"]["mean"]) == 1
    assert card["command"] == "livecell train tree"
    groups = [set(card["data"]["splits"][s]["groups"]) for s in ("train", "val", "test")]
    assert not (groups[0] & groups[1])
    assert not (groups[0] & groups[2])
    assert not (groups[1] & groups[2])
    test = card["metrics"]["test"]
    assert set(test) >= {"accuracy", "balanced_accuracy", "macro_auroc", "per_class"}
    assert sum(map(sum, test["confusion_matrix"])) == test["n"]
    assert card["training"]["epochs_run"] == 2


def test_weights_only_load_reproduces_predictions(data: PatchSet, tmp_path: Path) -> None:
    result = _train(data, tmp_path)
    model, card = training.load_model(tmp_path, model_factory=tiny_cnn)
    images = training.card_normalisation(card).apply(data.images)
    np.testing.assert_array_equal(
        training.predict_proba(model, images), training.predict_proba(result.model, images)
    )


def test_resume_continues_where_an_unbroken_run_would_be(data: PatchSet, tmp_path: Path) -> None:
    unbroken = _train(data, tmp_path / "a")
    one = training.TrainConfig(arch="tiny", epochs=1, batch_size=8, patience=5, seed=4)
    _train(data, tmp_path / "b", config=one)
    resumed = _train(data, tmp_path / "b", resume=True)
    assert resumed.card["training"]["history"] == unbroken.card["training"]["history"]
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_other_settings(data: PatchSet, tmp_path: Path) -> None:
    with pytest.raises(training.ResumeError, match="no checkpoint"):
        _train(data, tmp_path, resume=True)
    _train(data, tmp_path, config=training.TrainConfig(arch="tiny", epochs=1, batch_size=8))
    with pytest.raises(training.ResumeError, match="other data"):
        _train(data, tmp_path, resume=True)  # other seed


@pytest.mark.parametrize(
    "content", [b"not a checkpoint", "state dict"], ids=["junk", "a state dict"]
)
def test_resume_refuses_a_file_that_is_no_checkpoint_in_words(
    data: PatchSet, tmp_path: Path, content: bytes | str
) -> None:
    """A torn or foreign checkpoint.pt is a ResumeError (exit 2 on the command line)
    naming the file, not torch's traceback."""
    tmp_path.mkdir(exist_ok=True)
    checkpoint = tmp_path / "checkpoint.pt"
    if isinstance(content, bytes):
        checkpoint.write_bytes(content)
    else:
        torch.save(tiny_cnn("tiny", in_channels=1, num_classes=2).state_dict(), checkpoint)
    with pytest.raises(training.ResumeError, match="checkpoint"):
        _train(data, tmp_path, resume=True)


def test_data_of_one_class_or_frames_without_truth_exit_2(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Data a classifier cannot learn from is refused, naming it: one class folder only, or
    a simulator's frames without ground truth (its frames/ had read as one class)."""
    one_class = tmp_path / "one"
    (one_class / "dark").mkdir(parents=True)
    for image in (tree / "dark").iterdir():
        (one_class / "dark" / image.name).write_bytes(image.read_bytes())
    no_truth = tmp_path / "sim"
    (no_truth / "frames" / "Pos0").mkdir(parents=True)
    for image in (tree / "dark").iterdir():
        (no_truth / "frames" / "Pos0" / image.name).write_bytes(image.read_bytes())
    for data, words in ((one_class, "one class only"), (no_truth, "without ground_truth")):
        argv = [str(data), "--out", str(tmp_path / "m"), "--patch-size", "32", "--quiet"]
        assert command.main(argv) == command.EXIT_USAGE, words
        assert words in capsys.readouterr().err


def test_command_line(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training, "registry_model", tiny_cnn)
    argv = [
        str(tree),
        "--out",
        str(tmp_path / "m"),
        "--patch-size",
        "32",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--quiet",
    ]
    assert command.main(argv) == command.EXIT_OK
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert card["argv"] == ["livecell", "train", *argv]
    assert card["data"]["kind"] == "folders"
    assert card["data"]["patch_mode"] == "tile"
    lone = tmp_path / "lone" / "only"
    lone.mkdir(parents=True)
    assert command.main([str(lone.parent), "--out", str(tmp_path / "x")]) == command.EXIT_USAGE


def test_held_out_test_data_is_the_test_split(
    data: PatchSet, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("heldout") / "unseen"
    held_out = load_folder_tree(
        write_tree(root, np.random.default_rng(1), images_per_class=3), patch_size=32
    )
    config = training.TrainConfig(
        arch="tiny", epochs=1, batch_size=8, seed=4, fractions=(0.85, 0.15, 0.0)
    )
    out = tmp_path_factory.mktemp("model")
    card = _train(data, out, config=config, test_data=held_out).card
    splits = card["data"]["splits"]
    assert set(splits["test"]["groups"]) == set(held_out.groups)
    assert not set(splits["train"]["groups"]) & set(held_out.groups)
    assert splits["val"]["groups"]
    assert card["metrics"]["test"]["n"] == len(held_out.labels)
    with pytest.raises(ValueError, match="shares groups"):
        _train(data, out, config=config, test_data=data)


def test_intensity_jitter_can_be_left_out(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(training, "registry_model", tiny_cnn)
    argv = [str(tree), "--out", str(tmp_path), "--patch-size", "32", "--epochs", "1", "--quiet"]
    assert command.main([*argv, "--no-intensity-jitter"]) == command.EXIT_OK
    augment = json.loads((tmp_path / "model_card.json").read_text())["training"]["augment"]
    assert augment["gain_sd"] == 0.0
    assert augment["offset_sd"] == 0.0
    assert augment["flips"] is True
