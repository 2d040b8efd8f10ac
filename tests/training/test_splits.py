"""Grouped train/validation/test splits: a partition by group, stratified, reproducible."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livecell.training.splits import grouped_split

group_lists = st.lists(st.integers(0, 12).map(lambda g: f"g{g}"), min_size=1, max_size=80)
fractions = st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)).filter(
    lambda f: sum(f) > 0.01
)


@settings(max_examples=200, deadline=None)
@given(groups=group_lists, fractions=fractions, seed=st.integers(0, 2**32 - 1), data=st.data())
def test_grouped_split_is_a_partition_by_group(
    groups: list[str], fractions: tuple[float, float, float], seed: int, data: st.DataObject
) -> None:
    labels = data.draw(st.lists(st.integers(0, 3), min_size=len(groups), max_size=len(groups)))
    parts = grouped_split(groups, labels=labels, fractions=fractions, seed=seed)
    together = np.concatenate(parts)
    assert sorted(together.tolist()) == list(range(len(groups)))  # each index exactly once
    seen = [{groups[i] for i in p} for p in parts]
    assert not (seen[0] & seen[1])
    assert not (seen[0] & seen[2])
    assert not (seen[1] & seen[2])
    for fraction, part in zip(fractions, parts, strict=True):
        if fraction == 0:
            assert part.size == 0


def test_split_fills_every_split_and_stratifies() -> None:
    groups = [f"img{i}" for i in range(20) for _ in range(3)]
    labels = [i % 2 for i in range(20) for _ in range(3)]
    train, val, test = grouped_split(groups, labels=labels, seed=0)
    assert train.size
    assert val.size
    assert test.size
    for part in (train, val, test):
        assert {labels[i] for i in part} == {0, 1}
    assert train.size == pytest.approx(0.7 * len(groups), abs=6)
    again = grouped_split(groups, labels=labels, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))


def test_split_rejects_bad_fractions() -> None:
    with pytest.raises(ValueError, match="fractions"):
        grouped_split(["a"], fractions=(0.5, -0.1, 0.6), seed=0)
    with pytest.raises(ValueError, match="zero"):
        grouped_split(["a"], fractions=(0, 0, 0), seed=0)
