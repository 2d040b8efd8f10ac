"""Frames and their metadata: which pixel sizes from a file's metadata are kept."""

from __future__ import annotations

import math

import pytest

from livecell.frames import usable_pixel_size_um


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (0.325, 0.325),
        (2, 2.0),
        (math.nan, None),
        (math.inf, None),
        (-0.5, None),
        (0, None),
        (10**400, None),  # an integer past any float
        (True, None),
        ("0.325", None),
        (None, None),
    ],
)
def test_only_a_finite_positive_number_is_a_pixel_size(value: object, kept: float | None) -> None:
    assert usable_pixel_size_um(value) == kept
