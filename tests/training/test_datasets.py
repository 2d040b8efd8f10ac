"""Patch datasets: folder trees and simulations tiled into patches, normalisation, augmentation."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from training_helpers import write_tree

from livecell.simulation.scene import PATCH_STATES
from livecell.training.datasets import (
    AugmentParams,
    DataError,
    Normalisation,
    augment,
    detect_kind,
    load_data,
    load_folder_tree,
    load_simulated,
    tiles,
)


def test_folder_tree_tiles_each_image_and_groups_by_source(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "tree", np.random.default_rng(0))
    data = load_folder_tree(root, patch_size=32)
    assert data.classes == ("bright", "dark")
    assert data.images.shape == (2 * 4 * 4, 1, 32, 32)
    assert data.images.dtype == np.float32
    assert len(set(data.groups)) == 8
    assert "tree/bright/img0.tif" in data.groups
    for group in set(data.groups):
        assert {int(data.labels[i]) for i, g in enumerate(data.groups) if g == group} == {
            data.classes.index(group.split("/")[1])
        }
    assert data.images[data.labels == 0].mean() > data.images[data.labels == 1].mean()
    assert detect_kind(root) == "folders"


def test_folder_tree_resize_and_cap(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "tree", np.random.default_rng(0))
    resized = load_folder_tree(root, patch_size=16, mode="resize")
    assert resized.images.shape == (8, 1, 16, 16)
    capped = load_folder_tree(root, patch_size=32, max_patches=5, seed=3)
    assert len(capped) == 5
    # an image smaller than a tile becomes one tile
    assert len(tiles(np.zeros((2, 10, 50), np.float32), 32)) == 1


def test_folder_tree_without_classes_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        load_folder_tree(tmp_path)


def test_a_simulation_without_patch_truth_is_refused_not_read_as_class_folders(
    simulated: Path, tmp_path: Path
) -> None:
    """A nanowell simulation has frames/ and ground_truth/ but no patches.csv; read as a
    folder per class it would train on "frames" against "ground_truth"."""
    nanowell_like = tmp_path / "nw"
    (nanowell_like / "ground_truth").mkdir(parents=True)
    (nanowell_like / "ground_truth" / "tracks.csv").write_text("position,t\n")
    (nanowell_like / "frames").symlink_to(simulated / "frames")
    with pytest.raises(DataError, match=r"without ground_truth/patches\.csv.*--task cell_type"):
        detect_kind(nanowell_like)
    with pytest.raises(DataError, match=r"patches\.csv"):
        load_data([nanowell_like])


def test_simulated_patches_match_the_truth_table(simulated: Path) -> None:
    assert detect_kind(simulated) == "simulated"
    with (simulated / "ground_truth" / "patches.csv").open() as f:
        rows = list(csv.DictReader(f))
    occupied = [r for r in rows if r["state"] != "empty"]
    data = load_simulated(simulated)
    assert data.classes == PATCH_STATES
    assert data.images.shape == (len(occupied), 1, 160, 160)
    assert set(data.groups) == {"acq1/Pos0"}
    assert [data.classes[i] for i in data.labels] == [r["state"] for r in occupied]
    with_empty = load_simulated(simulated, include_empty=True, patch_size=64)
    assert with_empty.classes[-1] == "empty"
    assert with_empty.images.shape == (len(rows), 1, 64, 64)
    # pooled through the auto-detecting loader, with the cap spread over sources
    assert len(load_data([simulated], max_patches=4)) == 4


def test_normalisation_fits_per_channel() -> None:
    rng = np.random.default_rng(1)
    images = np.stack([rng.normal(5, 2, (10, 8, 8)), np.full((10, 8, 8), 3.0)], axis=1)
    norm = Normalisation.fit(images.astype(np.float32))
    assert norm.mean == pytest.approx((images[:, 0].mean(), 3.0))
    assert norm.std[1] == 1.0  # constant channel: centred only
    out = norm.apply(images.astype(np.float32))
    assert out[:, 0].std() == pytest.approx(1.0, abs=1e-5)
    assert np.abs(out[:, 1]).max() < 1e-6


def test_augment_is_deterministic_for_a_seeded_generator() -> None:
    patch = np.random.default_rng(2).normal(size=(2, 24, 24)).astype(np.float32)
    a = augment(patch, np.random.default_rng(7))
    b = augment(patch, np.random.default_rng(7))
    c = augment(patch, np.random.default_rng(8))
    assert a.shape == patch.shape
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # with every transform off it is the identity
    off = AugmentParams(flips=False, rot90=False, max_rotation_deg=0, gain_sd=0, offset_sd=0)
    np.testing.assert_array_equal(augment(patch, np.random.default_rng(7), off), patch)


def test_two_acquisitions_of_one_folder_name_are_refused(simulated: Path, tmp_path: Path) -> None:
    """Groups are named by acquisition folder and position: ``dayA/sim`` and ``dayB/sim``
    would pool into one group each position and blur the grouped split."""
    twins = [tmp_path / day / simulated.name for day in ("dayA", "dayB")]
    for twin in twins:
        shutil.copytree(simulated, twin)
    with pytest.raises(DataError, match="folder names must differ"):
        load_data(twins, patch_size=160)
