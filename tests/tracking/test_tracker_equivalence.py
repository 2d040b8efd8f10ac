"""The tracker's updates are pinned: any change to what it outputs must be deliberate.

``data/tracker_golden.json`` holds a SHA-256 of the ``repr`` of every ``WellUpdate``
(floats to the last bit) on seeded random wells and on the benchmark's synthetic chip,
recorded from the tracker before its per-well speed-up. After a deliberate change of
behaviour, rewrite it with ``python tests/tracking/test_tracker_equivalence.py --write``
and say why in the commit. The parameter sets with ``slow_speed_px=0`` (the slow gain
off) keep their digests from before the gain existed: with it off, nothing changed.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from livecell.bench.tracking import (
    _chip,
    _chip_labels,
    _chip_observations,
    _chip_step_labels,
    _chip_step_observations,
    _positions,
)
from livecell.tracking.nanowell import NanowellTracker, TrackerParams, WellUpdate
from livecell.tracking.observations import Observations, assign_to_boxes, split_by_box

GOLDEN = Path(__file__).parent / "data" / "tracker_golden.json"
SEEDS = range(40)

GAIN_OFF = TrackerParams(slow_speed_px=0.0)
PARAMS = [
    GAIN_OFF,
    replace(GAIN_OFF, contact_penalty=100.0, speed_weight=0.5, max_missed_frames=1),
    replace(GAIN_OFF, containment=False, max_link_distance_px=25.0, max_missed_frames=0),
    replace(GAIN_OFF, distance_weight=0.0, prediction_weight=0.0, shape_weight_px=0.0),
    replace(GAIN_OFF, containment=False, max_link_distance_px=60.0, contact_penalty=50.0),
    TrackerParams(),
    TrackerParams(containment=False, max_link_distance_px=25.0, max_missed_frames=0),
    TrackerParams(slow_speed_px=200.0, slow_gain_max=3.0, speed_weight=0.5),
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


def digest(updates: list[WellUpdate]) -> str:
    return hashlib.sha256(repr(updates).encode()).hexdigest()


def well_updates(params: TrackerParams, seed: int) -> list[WellUpdate]:
    tracker = NanowellTracker(params)
    updates = []
    t = 0
    for i, (obs, touching) in enumerate(random_frames(seed, 20, 3 + seed % 8)):
        t += 2 if i % 5 == 4 else 1  # some frames skipped: gaps in t
        updates.append(tracker.update_observations(obs, t, touching=touching))
    return updates


def chip_updates(params: TrackerParams) -> list[WellUpdate]:
    """The benchmark's chip: crops of label images, then whole-chip steps."""
    chip = _chip(60)
    centres = _positions(chip, 8, seed=3)
    per_well = [NanowellTracker(params) for _ in range(60)]
    updates = []
    for t in range(8):
        image = _chip_labels(chip, centres[t])
        for well, (x0, y0, x1, y1) in enumerate(chip.boxes.tolist()):
            updates.append(per_well[well].update(image[y0:y1, x0:x1], t))
    trackers = [NanowellTracker(params) for _ in range(60)]
    for t in range(8):
        _chip_step_labels(trackers, chip, _chip_labels(chip, centres[t]), t)
    for t in range(8, 12):
        _chip_step_observations(trackers, chip, _chip_observations(chip, centres[t - 8]), t)
    probe = Observations.empty()
    updates += [tracker.update_observations(probe, 12) for tracker in trackers]
    return updates


def digests() -> dict[str, str]:
    out = {
        f"well/{seed}/{which}": digest(well_updates(params, seed))
        for seed in SEEDS
        for which, params in enumerate(PARAMS)
    }
    out["chip"] = digest(chip_updates(GAIN_OFF))
    out["chip/default"] = digest(chip_updates(TrackerParams()))
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_updates_on_random_wells_are_the_recorded_ones(seed: int) -> None:
    golden = json.loads(GOLDEN.read_text())
    for which, params in enumerate(PARAMS):
        assert digest(well_updates(params, seed)) == golden[f"well/{seed}/{which}"], which


def test_updates_on_the_benchmark_chip_are_the_recorded_ones() -> None:
    golden = json.loads(GOLDEN.read_text())
    assert digest(chip_updates(GAIN_OFF)) == golden["chip"]
    assert digest(chip_updates(TrackerParams())) == golden["chip/default"]


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


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python tests/tracking/test_tracker_equivalence.py --write")
    GOLDEN.write_text(json.dumps(digests(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
