"""The optimised tracker gives exactly the updates of the pre-optimisation copy.

``nanowell_reference.py`` is the tracker (and ``touching_pairs``) as they were before
the per-well speed-up; every :class:`WellUpdate` field must be equal, floats bit for bit.
"""

from __future__ import annotations

from dataclasses import astuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nanowell_reference import NanowellTracker as ReferenceTracker
from nanowell_reference import touching_pairs as reference_touching_pairs

from livecell.bench.tracking import (
    _chip,
    _chip_labels,
    _chip_observations,
    _chip_step_labels,
    _chip_step_observations,
    _positions,
)
from livecell.tracking.nanowell import NanowellTracker, TrackerParams, WellUpdate
from livecell.tracking.observations import (
    Observations,
    assign_to_boxes,
    measure,
    split_by_box,
    split_pairs,
    touching_pairs,
)

PARAMS = [
    TrackerParams(),
    TrackerParams(contact_penalty=100.0, speed_weight=0.5, max_missed_frames=1),
    TrackerParams(containment=False, max_link_distance_px=25.0, max_missed_frames=0),
    TrackerParams(distance_weight=0.0, prediction_weight=0.0, shape_weight_px=0.0),
    TrackerParams(containment=False, max_link_distance_px=60.0, contact_penalty=50.0),
]


def random_frames(
    seed: int, frames: int, most: int
) -> list[tuple[Observations, list[tuple[int, int]] | None]]:
    """A well's frames: cells that wander, vanish, come back, split, merge and touch."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, most + 1))
    pos = rng.uniform(0, 100, (n, 2))
    area = rng.uniform(20, 200, n)
    out: list[tuple[Observations, list[tuple[int, int]] | None]] = []
    for _ in range(frames):
        pos = pos + rng.normal(0, rng.choice([1.0, 5.0, 40.0]), pos.shape)
        area = area * rng.uniform(0.8, 1.2, len(area))
        event = rng.random()
        if event < 0.15 and len(pos):  # a division: one cell becomes two halves
            k = int(rng.integers(len(pos)))
            pos = np.vstack([pos, pos[k] + rng.normal(0, 8, 2)])
            area[k] /= 2
            area = np.append(area, area[k] * rng.uniform(0.8, 1.2))
        elif event < 0.3 and len(pos) < most:  # a new cell
            pos = np.vstack([pos, rng.uniform(0, 100, (1, 2))])
            area = np.append(area, rng.uniform(20, 200))
        elif event < 0.4 and len(pos):  # a cell gone for good
            k = int(rng.integers(len(pos)))
            pos, area = np.delete(pos, k, axis=0), np.delete(area, k)
        if rng.random() < 0.05:  # exact ties
            pos = np.round(pos / 10) * 10
            area = np.round(area / 50) * 50 + 1
        seen = rng.random(len(pos)) > 0.15  # missed detections
        idx = np.flatnonzero(seen)
        labels = rng.permutation(np.arange(1, len(idx) + 1) * int(rng.integers(1, 4)))
        obs = Observations.from_arrays(labels, pos[idx, 0], pos[idx, 1], area[idx])
        touching: list[tuple[int, int]] | None
        if rng.random() < 0.4:
            touching = None  # from the boxes
        else:
            lab = labels.tolist()
            touching = [
                (lab[a], lab[b])
                for a in range(len(lab))
                for b in range(a + 1, len(lab))
                if rng.random() < 0.2
            ]
        out.append((obs, touching))
    return out


def run_both(
    params: TrackerParams,
    frames: list[tuple[Observations, list[tuple[int, int]] | None]],
) -> tuple[list[WellUpdate], list[WellUpdate]]:
    new, old = NanowellTracker(params), ReferenceTracker(params)
    a, b = [], []
    t = 0
    for i, (obs, touching) in enumerate(frames):
        t += 2 if i % 5 == 4 else 1  # some frames skipped: gaps in t
        a.append(new.update_observations(obs, t, touching=touching))
        b.append(old.update_observations(obs, t, touching=touching))
    return a, b


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    frames=st.integers(1, 15),
    most=st.sampled_from([1, 3, 5, 12]),
    which=st.integers(0, len(PARAMS) - 1),
)
def test_updates_equal_the_reference_on_random_wells(
    seed: int, frames: int, most: int, which: int
) -> None:
    a, b = run_both(PARAMS[which], random_frames(seed, frames, most))
    assert a == b


@pytest.mark.parametrize("seed", range(40))
def test_updates_equal_the_reference_on_fixed_seeds(seed: int) -> None:
    for params in PARAMS:
        a, b = run_both(params, random_frames(seed, 20, 3 + seed % 8))
        assert a == b


def test_label_images_give_the_reference_updates_and_touching_pairs() -> None:
    chip = _chip(60)
    centres = _positions(chip, 8, seed=3)
    new = [NanowellTracker() for _ in range(60)]
    ref = [ReferenceTracker() for _ in range(60)]
    for t in range(8):
        image = _chip_labels(chip, centres[t])
        np.testing.assert_array_equal(touching_pairs(image), reference_touching_pairs(image))
        for well, (x0, y0, x1, y1) in enumerate(chip.boxes.tolist()):
            crop = image[y0:y1, x0:x1]
            assert new[well].update(crop, t) == ref[well].update(crop, t)
    # the benchmark's whole-chip steps: the same tracker states as the reference's, well
    # by well, with the touching pairs split by split_pairs
    trackers = [NanowellTracker() for _ in range(60)]
    ref = [ReferenceTracker() for _ in range(60)]
    for t in range(8):
        image = _chip_labels(chip, centres[t])
        _chip_step_labels(trackers, chip, image, t)
        obs = measure(image)
        box_of = np.full(int(image.max()) + 1, -1, np.int64)
        box_of[obs.label] = assign_to_boxes(obs.x_px, obs.y_px, chip.boxes)
        per_well = split_pairs(reference_touching_pairs(image), box_of, 60)
        for tracker, part, touching in zip(
            ref, split_by_box(obs, chip.boxes), per_well, strict=True
        ):
            tracker.update_observations(part, t, touching=[tuple(p) for p in touching.tolist()])
        for a, b in zip(trackers, ref, strict=True):
            assert [astuple(x) for x in a._tracks] == [astuple(x) for x in b._tracks]
            assert a._contacts == b._contacts
    # and from observations
    for t in range(8, 12):
        obs = _chip_observations(chip, centres[t - 8])
        _chip_step_observations(trackers, chip, obs, t)
        for tracker, part in zip(ref, split_by_box(obs, chip.boxes), strict=True):
            tracker.update_observations(part, t, touching=())
        for a, b in zip(trackers, ref, strict=True):
            assert [astuple(x) for x in a._tracks] == [astuple(x) for x in b._tracks]


def test_split_by_box_parts_are_the_rows_of_each_box() -> None:
    chip = _chip(30)
    obs = _chip_observations(chip, _positions(chip, 1, seed=5)[0])
    which = assign_to_boxes(obs.x_px, obs.y_px, chip.boxes)
    for i, part in enumerate(split_by_box(obs, chip.boxes, relative=False)):
        expected = obs.take(np.flatnonzero(which == i))
        assert len(part) == len(expected) == 3
        for name in ("label", "x_px", "y_px", "area_px", "bbox"):
            np.testing.assert_array_equal(getattr(part, name), getattr(expected, name))
        assert repr(part) == repr(expected)


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    height=st.integers(0, 30),
    width=st.integers(0, 30),
    dtype=st.sampled_from([np.uint8, np.uint16, np.int32, np.int64, np.uint64]),
    low=st.sampled_from([0, -3, 2**40]),
)
def test_touching_pairs_equal_the_reference(
    seed: int, height: int, width: int, dtype: type, low: int
) -> None:
    rng = np.random.default_rng(seed)
    image = rng.integers(low if low < 0 else 0, int(rng.integers(1, 9)), (height, width))
    image = image * (rng.random(image.shape) < rng.random())
    if low > 0:
        image = np.where(image > 0, image + low, 0)
    info = np.iinfo(dtype)
    if image.size and (image.min() < info.min or image.max() > info.max):
        return
    image = image.astype(dtype)
    np.testing.assert_array_equal(touching_pairs(image), reference_touching_pairs(image))
    assert touching_pairs(image).dtype == np.int64
