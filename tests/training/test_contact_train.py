"""``livecell train --task contact`` end to end on tiny acquisitions, and its parts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from microscope import simulate_nanowell

pytest.importorskip("torch")

from livecell.engine.export import PARITY_TOLERANCE
from livecell.evaluation.tables import TruthContact
from livecell.segmentation import UNetSegmenter
from livecell.tracking.contact_net import ContactNet
from livecell.training import command
from livecell.training.contact_train import (
    ContactExamples,
    ContactTrainConfig,
    cached_contact_examples,
    contact_examples,
    interval_scores,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two 768 px nanowell acquisitions of 3 x 3 wells, 8 frames (seeds 5 and 6)."""
    root = tmp_path_factory.mktemp("sim")
    return [simulate_nanowell(root / f"nano{s}", seed=s, frames=8, size_px=768, wells=3)
            for s in (5, 6)]  # fmt: skip


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A third, smaller acquisition (seed 7, 4 frames) the command is scored on."""
    root = tmp_path_factory.mktemp("held-out")
    return simulate_nanowell(root / "nano7", seed=7, frames=4, size_px=768, wells=3)


def test_examples_are_the_candidate_pairs_with_the_simulators_answer(tiny: list[Path]) -> None:
    with UNetSegmenter.bundled(threads=1) as segmenter:
        ex = contact_examples(tiny[0], segmenter, half_px=16)
    assert len(ex) > 0
    assert ex.patches.shape == (len(ex), 4, 32, 32)
    assert np.all(ex.track_a < ex.track_b)
    for i in range(len(ex)):
        truly = any(
            c.well == ex.wells[i]
            and (c.track_a, c.track_b) == (ex.track_a[i], ex.track_b[i])
            and c.start_t <= ex.t[i] <= c.end_t
            for c in ex.truth
        )
        assert bool(ex.touching[i]) == truly
    # the masks in a patch are the pair's two cells, one in each channel
    assert np.all(ex.patches[:, 1].reshape(len(ex), -1).max(1) == 1)
    assert np.all(ex.patches[:, 2].reshape(len(ex), -1).max(1) == 1)
    assert not np.any((ex.patches[:, 1] > 0) & (ex.patches[:, 2] > 0))


def test_cached_examples_are_the_examples_and_are_read_back(
    tiny: list[Path], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    with UNetSegmenter.bundled(threads=1) as segmenter:
        fresh = contact_examples(tiny[0], segmenter, half_px=16)
        first = cached_contact_examples(tiny[0], segmenter, half_px=16, cache=cache)
    assert [p.name for p in cache.iterdir()] == ["nano5.npz"]
    # the segmenter is closed: the second call can only read the cache
    again = cached_contact_examples(tiny[0], segmenter, half_px=16, cache=cache)
    for name in ("patches", "measurements", "touching", "wells", "t", "track_a", "track_b"):
        np.testing.assert_array_equal(getattr(first, name), getattr(fresh, name))
        np.testing.assert_array_equal(getattr(again, name), getattr(fresh, name))
    assert again.truth == fresh.truth
    # another patch size is not in the cache: it needs the (closed) segmenter
    with pytest.raises(RuntimeError, match="closed"):
        cached_contact_examples(tiny[0], segmenter, half_px=12, cache=cache)


def test_an_unreadable_cache_file_is_made_again(
    tiny: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "nano5.npz").write_bytes(b"not a zip file")
    with UNetSegmenter.bundled(threads=1) as segmenter:
        remade = cached_contact_examples(tiny[0], segmenter, half_px=16, cache=cache)
        fresh = contact_examples(tiny[0], segmenter, half_px=16)
    assert "unreadable cache file" in capsys.readouterr().out
    np.testing.assert_array_equal(remade.patches, fresh.patches)
    np.testing.assert_array_equal(remade.touching, fresh.touching)
    again = cached_contact_examples(tiny[0], segmenter, half_px=16, cache=cache)
    np.testing.assert_array_equal(again.patches, fresh.patches)


def test_interval_scores_merge_frames_one_apart_and_match_at_half_iou() -> None:
    truth = (TruthContact("Pos0", "r000c000", 1, 2, 10, 13),)
    frames = np.array([10, 11, 13, 20])
    ex = ContactExamples(
        acquisition="a",
        patches=np.zeros((4, 4, 8, 8), np.float16),
        measurements=np.zeros((4, 4)),
        touching=np.array([True, True, True, False]),
        positions=np.array(["Pos0"] * 4),
        wells=np.array(["r000c000"] * 4),
        t=frames,
        track_a=np.array([1, 1, 1, 1]),
        track_b=np.array([2, 2, 2, 2]),
        truth=truth,
    )
    # 10, 11 and 13 are one contact (one frame apart), 20 a second, false one
    assert interval_scores([ex], [np.array([True, True, True, True])]) == {
        "precision": 0.5,
        "recall": 1.0,
        "contacts": 1.0,
    }
    # frame 10 alone covers 1 of the contact's 4 frames: IoU 0.25, no match
    only_first = interval_scores([ex], [np.array([True, False, False, False])])
    assert only_first["precision"] == 0.0
    assert only_first["recall"] == 0.0


def test_the_command_trains_exports_and_cards(
    tiny: list[Path], held_out: Path, tmp_path: Path
) -> None:
    out = tmp_path / "contact"
    argv = [*map(str, tiny), "--test", str(held_out), "--task", "contact", "--out", str(out)]
    assert command.main([*argv, "--epochs", "2", "--quiet"]) == command.EXIT_OK
    card = json.loads((out / "model_card.json").read_text())
    assert card["command"].startswith("livecell train")
    assert card["training"]["train"] == ["nano5"]
    assert card["training"]["val"] == ["nano6"]
    assert card["training"]["chosen_epoch"] in (1, 2)
    for name in ("net", "logistic"):
        assert 0.0 <= card["metrics"]["test"][name]["precision"] <= 1.0
    assert card["metrics"]["onnx_parity_max_abs_diff"] < PARITY_TOLERANCE
    with ContactNet(out, threads=1) as net:
        p = net.probabilities(np.zeros((3, 4, 32, 32), np.float32))
    assert p.shape == (3,)
    assert np.all((p >= 0) & (p <= 1))


def test_the_command_needs_two_acquisitions_and_held_out_data(
    tiny: list[Path], tmp_path: Path
) -> None:
    base = ["--task", "contact", "--out", str(tmp_path / "x")]
    assert command.main([*map(str, tiny), *base]) == command.EXIT_USAGE
    assert command.main([str(tiny[0]), "--test", str(tiny[1]), *base]) == command.EXIT_USAGE
    resume = [*map(str, tiny), "--test", str(tiny[1]), *base, "--resume"]
    assert command.main(resume) == command.EXIT_USAGE


@pytest.mark.parametrize("overlap", ["test in DATA", "DATA twice"])
def test_the_command_refuses_data_that_is_not_held_out(
    tiny: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], overlap: str
) -> None:
    """Scoring on what it trained on (or validating on it) is refused in words, before
    any example is cut."""
    data = [*tiny, tiny[1]] if overlap == "DATA twice" else tiny
    argv = [*map(str, data), "--test", str(tiny[1] if overlap == "test in DATA" else tmp_path)]
    assert command.main([*argv, "--task", "contact", "--out", str(tmp_path / "x")]) == 2
    said = capsys.readouterr().err
    assert ("is also in DATA" if overlap == "test in DATA" else "twice") in said
    assert not (tmp_path / "x").exists()


def test_cache_is_refused_for_other_tasks(
    tiny: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*map(str, tiny), "--task", "death", "--out", str(tmp_path / "y")]
    assert command.main([*argv, "--cache", str(tmp_path / "c")]) == command.EXIT_USAGE
    assert "--cache only applies to --task contact" in capsys.readouterr().err


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        ContactTrainConfig(patch_px=30)
    with pytest.raises(ValueError, match="threshold"):
        ContactTrainConfig(threshold=1.0)
