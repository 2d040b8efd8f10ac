"""Patch mode end to end: the stage on a frame, then ``simulate`` -> ``replay`` -> ``evaluate``.

The acquisition is small (640 px, 8 slices, 8 frames, every cell treated and dying
from frame 0 on) and analysed with the bundled ``holotomo_states`` model on ONNX
Runtime, through the real command line, twice: both replays give the same event ids.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import structlog
import structlog.testing
from daemons import livecell, read_events, write_config

from livecell.analysis import build_stage
from livecell.analysis.patches import PatchStage
from livecell.config import config_from_dict
from livecell.frames import Frame, FrameKey
from livecell.simulation.scene import PATCH_STATES

FRAMES = 8
SIZE_PX = 640
GRID = [SIZE_PX // 160, SIZE_PX // 160]
SIM_PARAMS = "onset_range_min = [-120.0, 30.0]\ndeath_fraction = 1.0\ntreated_fraction = 1.0\n"


class Meters:
    def __init__(self) -> None:
        self.stages: Counter[str] = Counter()
        self.items: Counter[tuple[str, str]] = Counter()

    def observe_stage(self, stage: str, seconds: float) -> None:
        assert seconds >= 0
        self.stages[stage] += 1

    def count_engine_items(self, model: str, backend: str, items: int) -> None:
        self.items[(model, backend)] += items


def test_stage_skips_empty_patches_and_classifies_the_rest(tmp_path: Path) -> None:
    config = config_from_dict(
        {"source": {"path": str(tmp_path)}, "analysis": {"mode": "patches"}}, base_dir=tmp_path
    )
    meters = Meters()
    stage = build_stage(config, meters)
    assert isinstance(stage, PatchStage)
    try:
        stage.warm_up()
        rng = np.random.default_rng(0)
        volume = (1.337 + 0.001 * rng.standard_normal((4, 330, 500))).astype(np.float32)
        volume[:, 20:140, 180:300] += 0.03  # a "cell" in patch (0, 1)
        volume[:, 180:300, 340:470] += 0.02  # and one in patch (1, 2)
        frame = Frame(FrameKey("acq", "Pos0", 0), volume, "ZYX", "zmq", completed_at=0.0)
        events = stage.update(frame)
    finally:
        stage.close()
    [states] = [e for e in events if e.kind == "patch_states"]
    fields = states.fields
    assert set(fields) == {"classes", "patch_size", "grid", "states", "counts"}
    assert fields["classes"] == list(PATCH_STATES)
    assert (fields["patch_size"], fields["grid"]) == (160, [2, 3])  # 330 x 500: remainder out
    grid = np.array(fields["states"])
    kept = grid >= 0
    assert kept.tolist() == [[False, True, False], [False, False, True]]
    assert sum(fields["counts"].values()) == 2
    assert set(fields["counts"]) == set(PATCH_STATES)
    assert meters.items[("holotomo_states", "onnxruntime")] == 2
    assert {"mip", "tiling", "engine", "patch_states"} <= set(meters.stages)


def test_a_patch_with_non_finite_pixels_is_skipped_not_called_the_first_class(
    tmp_path: Path,
) -> None:
    """A dead pixel (NaN) in one cell's patch and an infinite one in an empty patch:
    neither is classified; the other cell's patch still is."""
    config = config_from_dict(
        {"source": {"path": str(tmp_path)}, "analysis": {"mode": "patches"}}, base_dir=tmp_path
    )
    stage = build_stage(config, Meters())
    try:
        rng = np.random.default_rng(0)
        image = (1.337 + 0.001 * rng.standard_normal((330, 500))).astype(np.float32)
        image[20:140, 180:300] += 0.03  # a "cell" in patch (0, 1)
        image[180:300, 340:470] += 0.02  # and one in patch (1, 2)
        image[50, 200] = np.nan  # a dead pixel in the first cell's patch
        image[250, 50] = np.inf  # and an infinite one in the empty patch (1, 0)
        frame = Frame(FrameKey("acq", "Pos0", 0), image, "YX", "zmq", completed_at=0.0)
        events = stage.update(frame)
    finally:
        stage.close()
    [states] = [e for e in events if e.kind == "patch_states"]
    grid = np.array(states.fields["states"])
    assert (grid >= 0).tolist() == [[False, False, False], [False, False, True]]


def test_frames_far_from_the_training_range_are_warned_about_once_per_position(
    tmp_path: Path,
) -> None:
    """Raw uint16 counts fed to the refractive-index model: a warning names the
    position and both ranges, once; refractive-index frames get none."""
    config = config_from_dict(
        {"source": {"path": str(tmp_path)}, "analysis": {"mode": "patches"}}, base_dir=tmp_path
    )
    stage = build_stage(config, Meters())
    rng = np.random.default_rng(0)
    counts = rng.integers(900, 1100, (320, 320)).astype(np.uint16)
    index = (1.337 + 0.001 * rng.standard_normal((320, 320))).astype(np.float32)
    try:
        with structlog.testing.capture_logs() as logs:
            for t in range(3):
                stage.update(Frame(FrameKey("a", "Raw", t), counts, "YX", "zmq", completed_at=0.0))
                stage.update(Frame(FrameKey("a", "RI", t), index, "YX", "zmq", completed_at=0.0))
    finally:
        stage.close()
    warnings = [entry for entry in logs if "training range" in entry["event"]]
    assert [w["position"] for w in warnings] == ["Raw"]
    assert warnings[0]["frame_median"] > 800
    assert warnings[0]["model_mean"] == pytest.approx(1.35, abs=0.05)


@pytest.fixture(scope="module")
def acquisition(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("holotomo")
    params = out.parent / f"{out.name}-params.toml"
    params.write_text(SIM_PARAMS)
    done = livecell("simulate", out, "--kind", "holotomo", "--frames", FRAMES, "--size", SIZE_PX,
                    "--z", 8, "--seed", 7, "--params", params)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


def replay(acquisition: Path, folder: Path) -> list[dict[str, Any]]:
    folder.mkdir()
    config = write_config(
        folder / "livecell.toml",
        {
            "state_dir": "state",
            "source": {"kind": "watch", "path": str(acquisition / "frames"), "settle_s": 0.0},
            "analysis": {"mode": "patches"},
            "metrics": {"address": ""},
        },
    )
    done = livecell("replay", acquisition / "frames", "-c", config, "--events", "events.jsonl",
                    cwd=folder)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return read_events(folder / "events.jsonl")


def test_replay_gives_patch_states_per_frame_deaths_per_patch_and_stable_ids(
    acquisition: Path, tmp_path: Path
) -> None:
    events = replay(acquisition, tmp_path / "a")
    states = sorted((e for e in events if e["kind"] == "patch_states"), key=lambda e: e["t"])
    assert [e["t"] for e in states] == list(range(FRAMES))
    for e in states:
        assert e["grid"] == GRID
        assert e["patch_size"] == 160
        assert np.array(e["states"]).shape == tuple(GRID)
        assert sum(e["counts"].values()) == int((np.array(e["states"]) >= 0).sum())
    deaths = [e for e in events if e["kind"] == "death"]
    assert deaths  # every simulated cell dies from frame 0 on
    patches = [tuple(e["patch"]) for e in deaths]
    assert len(set(patches)) == len(patches)  # once per patch
    for e in deaths:
        assert 0 <= e["patch"][0] < GRID[0]
        assert 0 <= e["patch"][1] < GRID[1]
        assert e["pathway"] in ("apoptosis", "necroptosis", "necrosis")
        assert 0 <= e["onset_t"] <= e["t"]
        assert 0 < e["confidence"] <= 1

    again = replay(acquisition, tmp_path / "b")
    assert sorted(e["event_id"] for e in again) == sorted(e["event_id"] for e in events)

    report_file = tmp_path / "report.json"
    done = livecell("evaluate", acquisition / "ground_truth", "--events",
                    tmp_path / "a" / "events.jsonl", "--json", report_file)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(report_file.read_text())
    assert report["patches"]["frames_scored"] == FRAMES
    assert report["patches"]["frames_without_event"] == 0
    assert report["patches"]["empty_called"] == 0
    assert report["deaths"]["predicted"] == len(deaths)
    assert report["deaths"]["detected"] >= 1


def replay_into(frames: Path, folder: Path) -> list[dict[str, Any]]:
    """``livecell replay FRAMES`` into ``folder``'s events file, kept from earlier replays."""
    folder.mkdir(exist_ok=True)
    config = write_config(
        folder / "livecell.toml",
        {
            "source": {"path": str(frames)},
            "analysis": {"mode": "patches"},
            "metrics": {"address": ""},
        },
    )
    done = livecell("replay", frames, "-c", config, "--events", "events.jsonl", cwd=folder)
    assert done.returncode == 0, done.stderr
    return read_events(folder / "events.jsonl")


def deaths_and_early(events: list[dict[str, Any]]) -> dict[tuple[str, str, int, int], int]:
    return {
        (e["kind"], e["position"], *e["patch"]): e["t"]
        for e in events
        if e["kind"] in ("death", "early_necroptosis")
    }


def test_a_restart_reports_no_early_necroptosis_for_a_patch_already_dead(
    tmp_path: Path,
) -> None:
    """A run stopped after 12 frames and started again on the whole acquisition: the
    patches start afresh, but those whose death was reported before the stop (their ids
    are in the journal) get no early necroptosis after it, as in one unbroken run.

    Seed 101 (two positions, 24 frames): before this rule, two patches of Pos1 that died
    at t7 and t9 reported an early necroptosis at t15 after the restart."""
    acquisition = tmp_path / "holo101"
    done = livecell("simulate", acquisition, "--kind", "holotomo", "--frames", 24, "--size", 800,
                    "--positions", 2, "--mip", "--seed", 101)  # fmt: skip
    assert done.returncode == 0, done.stderr
    first_half = tmp_path / "first-half"
    for position in ("Pos0", "Pos1"):
        (first_half / position).mkdir(parents=True)
        for t in range(12):
            name = f"t{t:05d}.ome.tif"
            shutil.copy(acquisition / "frames" / position / name, first_half / position / name)
    replay_into(first_half, tmp_path / "restarted")
    restarted = deaths_and_early(replay_into(acquisition / "frames", tmp_path / "restarted"))
    unbroken = deaths_and_early(replay_into(acquisition / "frames", tmp_path / "unbroken"))

    died_before_stop = {k[1:]: t for k, t in restarted.items() if k[0] == "death" and t < 12}
    assert died_before_stop, "the first half must report deaths for this test to mean anything"
    for (kind, *patch), t in restarted.items():
        if kind == "early_necroptosis" and tuple(patch) in died_before_stop:
            assert t < died_before_stop[tuple(patch)], (patch, t)
    early = {k for k in restarted if k[0] == "early_necroptosis"}
    assert early == {k for k in unbroken if k[0] == "early_necroptosis"}


def test_positions_past_positions_kept_are_freed_the_longest_idle_first(tmp_path: Path) -> None:
    """A daemon runs acquisition after acquisition: patch states are kept for the
    ``positions_kept`` positions with the latest frames (about 350 bytes a patch, 0.2 MB
    for a 3700 px frame's 529 patches); a slow position between fast ones stays."""
    config = config_from_dict(
        {
            "source": {"path": str(tmp_path)},
            "analysis": {"mode": "patches"},
            "patches": {"positions_kept": 2},
        },
        base_dir=tmp_path,
    )
    stage = build_stage(config, Meters())
    assert isinstance(stage, PatchStage)
    rng = np.random.default_rng(0)
    image = (1.337 + 0.001 * rng.standard_normal((320, 320))).astype(np.float32)
    image[20:140, 180:300] += 0.03

    def feed(acquisition: str, position: str, t: int) -> None:
        key = FrameKey(acquisition, position, t)
        stage.update(Frame(key, image, "YX", "zmq", completed_at=0))

    try:
        feed("first", "slow", 0)
        for t in range(10):
            feed("first", "fast", t)
        assert stage.open_positions == [("first", "slow"), ("first", "fast")]
        feed("first", "slow", 1)
        feed("second", "Pos0", 0)  # a third position: the one longest without a frame goes
        assert stage.open_positions == [("first", "slow"), ("second", "Pos0")]
        assert stage.overlay(FrameKey("first", "fast", 9)) is None
    finally:
        stage.close()
