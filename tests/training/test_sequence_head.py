"""The death head trained on the daemon's windows: whole-track series, chip motion, epoch choice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch
from microscope import simulate_deathy

from livecell.engine.bundled import bundled_model_dir
from livecell.engine.sequence_export import check_sequence_parity
from livecell.engine.sequence_runtime import SequenceModel
from livecell.training.datasets import DataError
from livecell.training.sequence_head import (
    CHIP_MOTION_NORMALISATION,
    TrackSeries,
    chip_motion_series,
    daemon_windows,
    death_watch_score,
    track_series,
    train_death_head,
)
from livecell.training.sequence_train import load_sequence_model

FloatArray = npt.NDArray[np.float32]


@pytest.fixture(scope="module")
def acquisition(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny nanowell acquisition with many deaths: 512 px, 2 x 2 wells, 8 frames."""
    return simulate_deathy(tmp_path_factory.mktemp("head"), seed=5)


@pytest.fixture(scope="module")
def series(acquisition: Path) -> list[TrackSeries]:
    return track_series(acquisition, bundled_model_dir("nanowell_death"))


def test_daemon_windows_end_at_every_frame_padded_at_the_front() -> None:
    idx = daemon_windows(5, 3)
    assert idx.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4]]


def test_track_series_cover_whole_tracks(series: list[TrackSeries]) -> None:
    assert series
    for tr in series:
        n = tr.ts.size
        assert tr.features.shape[0] == n
        assert tr.motion.shape == (n, 5)
        assert tr.dead.shape == (n,)
        assert np.all(np.diff(tr.ts) == 1)
        assert (tr.onset_t >= 0) == (tr.pathway > 0 and bool(tr.dead.any()))


def test_head_training_writes_a_bidirectional_model_with_onnx(
    series: list[TrackSeries], tmp_path: Path
) -> None:
    out = tmp_path / "head"
    card = train_death_head(
        series, series, base=bundled_model_dir("nanowell_death"), out=out, window=6,
        hidden_size=8, epochs=1, progress=False,
    )  # fmt: skip
    assert card["input"]["crops"]["window"] == 6
    assert card["model"]["bidirectional"] is True
    assert json.loads((out / "model_card.json").read_text())["model"]["hidden_size"] == 8
    model, _ = load_sequence_model(out)
    assert model.bidirectional
    rng = np.random.default_rng(0)
    crops = rng.standard_normal((2, 6, 2, 48, 48)).astype(np.float32)
    motion = rng.standard_normal((2, 6, 5)).astype(np.float32)
    assert check_sequence_parity(model, out / "model.onnx", crops, motion) < 1e-4
    # the frozen encoder is the base model's
    base, _ = load_sequence_model(bundled_model_dir("nanowell_death"))
    encoders = (model.encoder.state_dict().values(), base.encoder.state_dict().values())
    for a, b in zip(*encoders, strict=True):
        assert torch.equal(a, b)
    score = death_watch_score(
        series,
        [np.full((tr.ts.size, 6, 4), 0.25, np.float32) for tr in series],
        [np.full((tr.ts.size, 4), 0.25, np.float32) for tr in series],
        6,
    )
    assert score["false_death_rate"] == 0.0
    assert score["within_2_frames"] == 0.0


def test_chip_motion_takes_the_stage_drift_out(
    acquisition: Path, series: list[TrackSeries], tmp_path: Path
) -> None:
    """Dead cells stand still on the chip (the simulator stops them) while the stage drifts:
    after onset their chip speed is near 0 and their camera speed is the drift's."""
    _, card = load_sequence_model(bundled_model_dir("nanowell_death"))
    chip = chip_motion_series(series, acquisition, card)
    stats = card["input"]["normalisation"]["motion"]
    log_mean, log_std = CHIP_MOTION_NORMALISATION[0]
    chip_px, camera_px = [], []
    for plain, moved in zip(series, chip, strict=True):
        np.testing.assert_array_equal(plain.motion[:, 3:], moved.motion[:, 3:])
        after = plain.dead > 0.5
        after[: int(np.argmax(after)) + 1] = False  # the step into the onset frame still moves
        chip_px += list(np.exp(moved.motion[after, 0] * log_std + log_mean) - 0.1)
        camera_px += list(plain.motion[after, 0] * stats["std"][0] + stats["mean"][0])
    assert len(chip_px) >= 5
    assert np.median(chip_px) < 0.5 < np.median(camera_px)
    missing = tmp_path / "acq"
    (missing / "ground_truth").mkdir(parents=True)
    with pytest.raises(DataError, match=r"stage\.csv"):
        chip_motion_series(series, missing, card)


def test_a_chip_motion_head_says_so_in_its_card_and_the_runtime_reads_it(
    acquisition: Path, series: list[TrackSeries], tmp_path: Path
) -> None:
    _, base_card = load_sequence_model(bundled_model_dir("nanowell_death"))
    chip = chip_motion_series(series, acquisition, base_card)
    out = tmp_path / "chip_head"
    card = train_death_head(
        chip, chip, base=bundled_model_dir("nanowell_death"), out=out, window=6,
        hidden_size=8, epochs=1, progress=False, chip_motion=True,
    )  # fmt: skip
    assert card["input"]["motion"]["descriptors"][0] == "log_speed_px_per_frame"
    assert card["input"]["normalisation"]["motion"]["std"][0] == CHIP_MOTION_NORMALISATION[0][1]
    assert SequenceModel(out).input.motion_frame == "chip"


def _late_model_track(chip_steps: bool) -> tuple[TrackSeries, FloatArray, FloatArray]:
    """A cell that crawls 6 px a frame, stops at frame 20 and dies there (the truth), read
    by a model that sees the death only from frame 26; its windows' probabilities."""
    n, window, onset, seen = 40, 8, 20, 26
    steps = np.where(np.arange(n) <= onset, 6.0, 0.3)
    steps[0] = np.nan
    track = TrackSeries(
        name="acq/Pos0/1",
        features=np.zeros((n, 4), np.float32),
        motion=np.zeros((n, 5), np.float32),
        ts=np.arange(n, dtype=np.int64),
        dead=(np.arange(n) >= onset).astype(np.float32),
        pathway=1,
        chip_steps_px=steps if chip_steps else None,
    )
    p_dead = np.where(np.arange(n) >= seen, 0.97, 0.02)
    per_frame = np.stack([1 - p_dead, p_dead, 0 * p_dead, 0 * p_dead], axis=1).astype(np.float32)
    idx = daemon_windows(n, window)
    return track, per_frame[idx], per_frame


def test_the_epoch_is_chosen_with_the_daemons_arrest_rule_on_chip_steps() -> None:
    """With chip steps, the score's DeathWatch moves the model's late onset to the stop, as
    the daemon does; without them the model's onset stands."""
    for chip_steps, within in ((True, 1.0), (False, 0.0)):
        track, frame_probs, window_probs = _late_model_track(chip_steps)
        score = death_watch_score([track], [frame_probs], [window_probs], 8)
        assert score["detected"] == 1.0
        assert score["within_2_frames"] == within


def _apoptosis_seen_at_the_end(name: str, n: int) -> tuple[TrackSeries, FloatArray, FloatArray]:
    """A cell whose apoptosis begins 4 frames before its track ends, seen at once: the call
    comes while the apoptosis hold still waits, and the track ends before the hold passes."""
    onset = n - 4
    track = TrackSeries(
        name=name,
        features=np.zeros((n, 4), np.float32),
        motion=np.zeros((n, 5), np.float32),
        ts=np.arange(n, dtype=np.int64),
        dead=(np.arange(n) >= onset).astype(np.float32),
        pathway=1,
    )
    p_dead = np.where(np.arange(n) >= onset, 0.97, 0.02)
    per_frame = np.stack([1 - p_dead, p_dead, 0 * p_dead, 0 * p_dead], axis=1).astype(np.float32)
    return track, per_frame[daemon_windows(n, 8)], per_frame


def _live_track(name: str, n: int) -> tuple[TrackSeries, FloatArray, FloatArray]:
    track = TrackSeries(
        name=name,
        features=np.zeros((n, 4), np.float32),
        motion=np.zeros((n, 5), np.float32),
        ts=np.arange(n, dtype=np.int64),
        dead=np.zeros(n, np.float32),
        pathway=0,
    )
    per_frame = np.tile(np.array([[0.98, 0.02, 0.0, 0.0]], np.float32), (n, 1))
    return track, per_frame[daemon_windows(n, 8)], per_frame


def _score(*runs: tuple[TrackSeries, FloatArray, FloatArray]) -> dict[str, float]:
    return death_watch_score([r[0] for r in runs], [r[1] for r in runs], [r[2] for r in runs], 8)


def test_a_held_apoptosis_counts_when_its_track_lasts_to_the_end_of_its_position() -> None:
    """The daemon makes the held death of a track still open when the run ends, not of one
    that ended earlier (a dividing cell's); the score does the same, position by position."""
    dying = _apoptosis_seen_at_the_end("acq/Pos0/1", 30)
    for other, detected in (
        (_live_track("acq/Pos0/2", 30), 1.0),
        (_live_track("acq/Pos0/2", 40), 0.0),
    ):
        score = _score(dying, other)
        assert score["deaths"] == 1.0
        assert score["detected"] == detected
        assert score["within_2_frames"] == detected
        assert score["false_death_rate"] == 0.0
    # a later track of another position does not keep this one from the end of its own
    assert _score(dying, _live_track("acq/Pos1/1", 40))["detected"] == 1.0
