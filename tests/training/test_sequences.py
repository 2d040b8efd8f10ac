"""Track sequences for the nanowell sequence models: crops, masks, motion, labels, training."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from microscope import simulate_deathy

from livecell.engine.sequence_export import onnx_sequence_probabilities
from livecell.tracking.cell_crops import crop_centred
from livecell.training.datasets import DataError, read_frame
from livecell.training.sequence_train import (
    card_sequence_normalisation,
    load_sequence_model,
    predict_sequences,
    train_sequence_model,
)
from livecell.training.sequences import (
    CELL_TYPE_CLASSES,
    PATHWAY_CLASSES,
    SequenceSet,
    concatenate_sequences,
    load_track_sequences,
    window_starts,
)
from livecell.training.splits import grouped_split

CROP_PX = 32
WINDOW = 4
STRIDE = 3


@pytest.fixture(scope="session")
def acquisition(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny nanowell acquisition: 3 positions of 512 px, 2 x 2 wells, 8 frames."""
    return simulate_deathy(tmp_path_factory.mktemp("seq"), seed=3, positions=3)


@pytest.fixture(scope="session")
def data(acquisition: Path) -> SequenceSet:
    return load_track_sequences(acquisition, crop_px=CROP_PX, window=WINDOW, stride=STRIDE)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_shapes_and_classes(data: SequenceSet, acquisition: Path) -> None:
    n = len(data)
    assert data.crops.shape == (n, WINDOW, 2, CROP_PX, CROP_PX)
    assert data.crops.dtype == np.float32
    assert data.motion.shape == (n, WINDOW, 5)
    assert data.motion.dtype == np.float32
    assert data.frame_death.shape == data.frame_t.shape == (n, WINDOW)
    assert data.cell_type_classes == CELL_TYPE_CLASSES == ("effector", "target")
    assert data.pathway_classes == PATHWAY_CLASSES
    assert PATHWAY_CLASSES == ("live", "apoptosis", "necroptosis", "necrosis")
    assert set(np.unique(data.crops[:, :, -1])) <= {0.0, 1.0}
    assert set(data.groups) == {f"acq/Pos{i}" for i in range(3)}
    # one window count per track as window_starts says (every track has 8 frames or fewer)
    rows = _rows(acquisition / "ground_truth" / "tracks.csv")
    lengths: dict[str, int] = {}
    for r in rows:
        key = f"acq/{r['position']}/{r['track']}"
        lengths[key] = lengths.get(key, 0) + 1
    expected = sum(len(window_starts(m, WINDOW, STRIDE)) for m in lengths.values())
    assert n == expected
    assert set(data.tracks) == set(lengths)


def test_masks_select_the_cell_and_crops_come_from_its_frame(
    data: SequenceSet, acquisition: Path
) -> None:
    rows = _rows(acquisition / "ground_truth" / "tracks.csv")
    where = {(f"acq/{r['position']}/{r['track']}", int(r["t"])): r for r in rows}
    centre = CROP_PX // 2
    live = data.frame_death == 0
    assert live.any()
    assert np.all(data.crops[:, :, -1, centre, centre][live] == 1.0)
    # the image channel is the frame cut at the track's own (x, y), window by window
    assert len(data) > 0
    for i in range(0, len(data), 7):
        position, track = data.tracks[i].split("/")[1:]
        t = int(data.frame_t[i, -1])
        row = where[(data.tracks[i], t)]
        frame = read_frame(acquisition / "frames" / position / f"t{t:05d}.ome.tif")
        expected = crop_centred(frame, float(row["x"]), float(row["y"]), CROP_PX)
        np.testing.assert_array_equal(data.crops[i, -1, :-1], expected)
        assert track == row["track"]


def test_windows_never_mix_tracks(data: SequenceSet, acquisition: Path) -> None:
    rows = _rows(acquisition / "ground_truth" / "tracks.csv")
    times: dict[str, list[int]] = {}
    types: dict[str, str] = {}
    for r in rows:
        key = f"acq/{r['position']}/{r['track']}"
        times.setdefault(key, []).append(int(r["t"]))
        types[key] = r["cell_type"]
    for i, track in enumerate(data.tracks):
        ts = data.frame_t[i]
        assert set(ts.tolist()) <= set(times[track])  # only this track's frames
        assert np.all(np.diff(ts) >= 0)
        real = ts[np.r_[True, np.diff(ts) > 0]]
        assert np.all(np.diff(real) == 1)  # consecutive frames of one track
        assert data.cell_type_classes[data.cell_type[i]] == types[track]
        assert data.groups[i] == track.rsplit("/", 1)[0]


def test_labels_match_deaths_csv(data: SequenceSet, acquisition: Path) -> None:
    deaths = {
        f"acq/{r['position']}/{r['track']}": (r["pathway"], int(r["onset_t"]))
        for r in _rows(acquisition / "ground_truth" / "deaths.csv")
    }
    assert deaths
    for i, track in enumerate(data.tracks):
        pathway, onset_t = deaths.get(track, ("live", math.inf))
        ts = data.frame_t[i]
        np.testing.assert_array_equal(data.frame_death[i], (ts >= onset_t).astype(np.float32))
        expected = pathway if ts[-1] >= onset_t else "live"
        assert data.pathway_classes[data.pathway[i]] == expected
    seen = {data.pathway_classes[p] for p in data.pathway}
    assert "live" in seen
    assert len(seen) >= 3


def test_short_tracks_are_padded_at_the_front(acquisition: Path) -> None:
    long = load_track_sequences(acquisition, crop_px=CROP_PX, window=10, stride=5)
    assert long.crops.shape[1] == 10
    assert len(long) == len(set(long.tracks))  # one window per (8-frame or shorter) track
    first = long.frame_t[:, :1]
    pad = 10 - 8
    np.testing.assert_array_equal(long.frame_t[:, :pad], np.repeat(first, pad, axis=1))
    np.testing.assert_array_equal(long.crops[:, 0], long.crops[:, pad - 1])
    np.testing.assert_array_equal(long.motion[:, 0], long.motion[:, pad - 1])


def test_grouped_split_keeps_groups_whole(data: SequenceSet) -> None:
    splits = grouped_split(data.groups, labels=data.cell_type.tolist(), seed=0)
    seen = [{data.groups[i] for i in idx} for idx in splits]
    assert all(seen)
    assert not seen[0] & seen[1]
    assert not seen[0] & seen[2]
    assert not seen[1] & seen[2]
    assert sum(idx.size for idx in splits) == len(data)


def test_concatenate_keeps_every_window(data: SequenceSet) -> None:
    both = concatenate_sequences([data, data.subset(np.arange(3))])
    assert len(both) == len(data) + 3
    np.testing.assert_array_equal(both.crops[-3:], data.crops[:3])
    assert both.tracks[-3:] == data.tracks[:3]


@pytest.mark.parametrize("task", ["cell_type", "death"])
def test_training_writes_model_card_and_parity_checked_onnx(
    data: SequenceSet, tmp_path: Path, task: str
) -> None:
    result = train_sequence_model(
        data,
        task=task,  # type: ignore[arg-type]
        out=tmp_path,
        epochs=1,
        batch_size=16,
        seed=1,
        argv=["train-seq", task],
        progress=False,
    )
    for name in ("model.pt", "model_card.json", "model.onnx", "confusion_test.png"):
        assert (tmp_path / name).is_file()
    card = json.loads((tmp_path / "model_card.json").read_text())
    assert card == result.card
    assert card["task"] == f"sequence {task}"
    assert card["classes"] == list(data.task_labels(task)[1])  # type: ignore[arg-type]
    assert card["input"]["crops"]["window"] == WINDOW
    assert card["input"]["crops"]["height"] == CROP_PX
    assert len(card["input"]["normalisation"]["motion"]["mean"]) == 5
    assert card["command"] == f"train-seq {task}"
    assert result.onnx_parity_max_abs_diff < 1e-4
    assert card["onnx"]["parity_max_abs_diff"] == result.onnx_parity_max_abs_diff
    groups = [set(card["data"]["splits"][s]["groups"]) for s in ("train", "val", "test")]
    assert not groups[0] & groups[1]
    assert not groups[0] & groups[2]
    assert not groups[1] & groups[2]
    for split in ("train", "val", "test"):
        assert {"accuracy", "balanced_accuracy", "macro_auroc"} <= set(card["metrics"][split])
    if task == "death":
        assert "frame_death" in card["metrics"]["test"]

    # weights-only reload and ONNX Runtime agree with the trained model, on another batch size
    model, loaded_card = load_sequence_model(tmp_path)
    crops, motion = card_sequence_normalisation(loaded_card).apply(data.crops[:3], data.motion[:3])
    frame_ref, seq_ref = predict_sequences(result.model, crops, motion)
    frame_pt, seq_pt = predict_sequences(model, crops, motion)
    np.testing.assert_array_equal(seq_pt, seq_ref)
    frame_onnx, seq_onnx = onnx_sequence_probabilities(tmp_path / "model.onnx", crops, motion)
    assert frame_onnx.shape == frame_ref.shape == (3, WINDOW, len(card["classes"]))
    assert float(np.max(np.abs(seq_onnx - seq_ref))) < 1e-4
    assert float(np.max(np.abs(frame_onnx - frame_pt))) < 1e-4
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(state) == set(model.state_dict())


def test_missing_tracks_csv_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "acq" / "ground_truth").mkdir(parents=True)
    with pytest.raises(DataError, match=r"tracks\.csv") as info:
        load_track_sequences(tmp_path / "acq")
    assert info.value.path.endswith("tracks.csv")


def test_missing_frame_names_the_file(acquisition: Path, tmp_path: Path) -> None:
    copy = tmp_path / "acq"
    shutil.copytree(acquisition, copy)
    missing = copy / "frames" / "Pos1" / "t00005.ome.tif"
    missing.unlink()
    with pytest.raises(DataError, match=r"t00005\.ome\.tif") as info:
        load_track_sequences(copy, crop_px=CROP_PX, window=WINDOW)
    assert info.value.path == str(missing)


def test_malformed_deaths_csv_names_the_file(acquisition: Path, tmp_path: Path) -> None:
    copy = tmp_path / "acq"
    shutil.copytree(acquisition / "ground_truth", copy / "ground_truth")
    deaths = copy / "ground_truth" / "deaths.csv"
    deaths.write_text("position,track,well,pathway,onset_t,marker_t\nPos0,1,r000c000,melting,2,3\n")
    with pytest.raises(DataError, match="unknown pathway 'melting'") as info:
        load_track_sequences(copy)
    assert info.value.path == str(deaths)


def test_command_line_trains_a_sequence_task(
    acquisition: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from livecell.training import command

    argv = [str(acquisition), "--task", "death", "--out", str(tmp_path / "m"), "--epochs", "1"]
    argv += ["--crop-px", str(CROP_PX), "--window", str(WINDOW), "--stride", str(STRIDE)]
    assert command.main(argv) == command.EXIT_OK
    assert "reading tracks" in capsys.readouterr().err  # reading takes minutes on real data
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert card["task"] == "sequence death"
    assert (tmp_path / "m" / "model.onnx").is_file()
    missing = [str(tmp_path / "nowhere"), "--task", "cell_type", "--out", str(tmp_path / "x")]
    assert command.main(missing) == command.EXIT_USAGE
    assert command.main([*argv, "--resume"]) == command.EXIT_USAGE  # a patch-only option
