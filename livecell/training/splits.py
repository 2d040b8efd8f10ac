"""Grouped splits: a group (source image, acquisition + position) is never on two sides.

Neighbouring patches of one image or one field of view are nearly the same sample;
splitting them by patch leaks the test set into training. Every function here assigns
whole groups, stratified by label where the groups allow it, and returns sorted index
arrays into the original sequence. Pure functions over sequences; the seed is passed in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np
import numpy.typing as npt

IndexArray = npt.NDArray[np.int64]


def _group_table(
    groups: Sequence[Hashable], labels: Sequence[Hashable] | None
) -> tuple[list[Hashable], dict[Hashable, list[int]], dict[Hashable, str]]:
    """Unique groups (first-seen order), their member indices and each group's stratum."""
    if labels is not None and len(labels) != len(groups):
        raise ValueError(f"{len(labels)} labels for {len(groups)} groups")
    members: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    strata: dict[Hashable, str] = {}
    for g, idx in members.items():
        if labels is None:
            strata[g] = ""
        else:
            # the group's most common label; ties go to the smallest, by its text
            counts = Counter(repr(labels[i]) for i in idx)
            top = max(counts.values())
            strata[g] = min(k for k, v in counts.items() if v == top)
    return list(members), members, strata


def _shuffled_strata(
    unique: list[Hashable],
    members: dict[Hashable, list[int]],
    strata: dict[Hashable, str],
    rng: np.random.Generator,
) -> list[list[Hashable]]:
    """Groups per stratum (strata in sorted order): shuffled, then largest first (stable)."""
    order = [unique[i] for i in rng.permutation(len(unique))]
    by_stratum: dict[str, list[Hashable]] = {}
    for g in order:
        by_stratum.setdefault(strata[g], []).append(g)
    return [sorted(by_stratum[s], key=lambda g: -len(members[g])) for s in sorted(by_stratum)]


def _indices(members: dict[Hashable, list[int]], chosen: list[Hashable]) -> IndexArray:
    out = [i for g in chosen for i in members[g]]
    return np.array(sorted(out), dtype=np.int64)


def grouped_split(
    groups: Sequence[Hashable],
    *,
    labels: Sequence[Hashable] | None = None,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int,
) -> tuple[IndexArray, IndexArray, IndexArray]:
    """``(train_idx, val_idx, test_idx)``: each group wholly in one split.

    Groups are dealt out per label stratum (a group's label is its most common one),
    largest first, each to the split furthest below its share of the stratum's items,
    so every split gets about ``fractions`` of every label where the groups allow it.
    Afterwards a split with a non-zero fraction that got no group takes the smallest
    group of the split holding the most groups, as long as that split keeps one.
    Every index is in exactly one of the three arrays.
    """
    if len(fractions) != 3 or any(not np.isfinite(f) or f < 0 for f in fractions):
        raise ValueError(f"fractions must be three non-negative numbers, got {fractions}")
    total_fraction = float(sum(fractions))
    if total_fraction <= 0:
        raise ValueError("fractions must not all be zero")
    share = np.array(fractions, dtype=np.float64) / total_fraction
    unique, members, strata = _group_table(groups, labels)
    rng = np.random.default_rng(seed)
    assigned: list[list[Hashable]] = [[], [], []]
    for stratum in _shuffled_strata(unique, members, strata, rng):
        size = sum(len(members[g]) for g in stratum)
        got = np.zeros(3)
        for g in stratum:
            deficit = share * size - got
            deficit[share == 0] = -np.inf
            k = int(np.argmax(deficit))
            assigned[k].append(g)
            got[k] += len(members[g])
    for k in range(3):
        if share[k] > 0 and not assigned[k]:
            donor = max(range(3), key=lambda j: len(assigned[j]))
            if len(assigned[donor]) > 1:
                smallest = min(assigned[donor], key=lambda g: len(members[g]))
                assigned[donor].remove(smallest)
                assigned[k].append(smallest)
    train, val, test = (_indices(members, a) for a in assigned)
    return train, val, test
