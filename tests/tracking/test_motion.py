"""Motion descriptors: the numbers each sequence model reads beside its crops."""

from __future__ import annotations

import numpy as np
import pytest

from livecell.tracking.motion import (
    ACCELERATION_CLIP_PX,
    CHIP_MOTION_DESCRIPTORS,
    MOTION_DESCRIPTORS,
    SPEED_FLOOR_PX,
    chip_motion_descriptors,
    motion_descriptors,
)


def test_motion_descriptors_straight_line() -> None:
    t = np.arange(10, dtype=np.float64)
    centroids = np.stack([10 + 3 * t, 20 + 4 * t], axis=1)  # (y, x): 5 px per frame
    areas = np.full(10, 100.0)
    ecc = np.full(10, 0.5)
    d = motion_descriptors(centroids, areas, ecc)
    assert d.shape == (10, len(MOTION_DESCRIPTORS))
    assert d.dtype == np.float32
    np.testing.assert_allclose(d[:, 0], 5.0, rtol=1e-6)
    np.testing.assert_allclose(d[:, 1], np.arctan2(3.0, 4.0), rtol=1e-6)
    np.testing.assert_allclose(d[:, 2:], 0.0, atol=1e-6)


def test_motion_descriptors_area_and_eccentricity_changes() -> None:
    centroids = np.zeros((3, 2))
    d = motion_descriptors(centroids, [100.0, 150.0, 75.0], [0.1, 0.3, 0.2])
    np.testing.assert_allclose(d[:, 0:3], 0.0)  # no motion: speed, direction, acceleration 0
    np.testing.assert_allclose(d[:, 3], [0.0, 0.5, -0.5])
    np.testing.assert_allclose(d[:, 4], [0.0, 0.2, -0.1], atol=1e-6)


def test_motion_descriptors_acceleration_and_edge_cases() -> None:
    centroids = np.array([[0, 0], [0, 1], [0, 3], [0, 6]], dtype=float)  # speeds 1, 2, 3
    d = motion_descriptors(centroids, np.ones(4), np.zeros(4))
    np.testing.assert_allclose(d[:, 2], [0, 0, 1, 1])
    assert motion_descriptors(np.zeros((1, 2)), [5.0], [0.2]).tolist() == [[0.0] * 5]
    with pytest.raises(ValueError, match="centroids"):
        motion_descriptors(np.zeros((3, 3)), np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="positive"):
        motion_descriptors(np.zeros((2, 2)), [1.0, 0.0], np.zeros(2))


def test_chip_motion_descriptors_log_the_speed_and_clip_the_acceleration() -> None:
    centroids = np.array([[0, 0], [0, 3], [0, 3.1], [0, 53.1]], dtype=float)  # 3, 0.1, 50 px
    chip = chip_motion_descriptors(centroids, np.ones(4), np.zeros(4))
    plain = motion_descriptors(centroids, np.ones(4), np.zeros(4))
    assert chip.shape == (4, len(CHIP_MOTION_DESCRIPTORS))
    np.testing.assert_allclose(chip[:, 0], np.log(plain[:, 0] + SPEED_FLOOR_PX), rtol=1e-6)
    np.testing.assert_allclose(chip[:, 2], [0.0, 0.0, -2.9, ACCELERATION_CLIP_PX], rtol=1e-6)
    np.testing.assert_array_equal(chip[:, [1, 3, 4]], plain[:, [1, 3, 4]])
