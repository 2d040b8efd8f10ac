"""Retrain the temporal part of a death CNN-LSTM on daemon-style windows, encoder frozen.

Training the whole CNN-LSTM on long windows is slow on a CPU (the per-frame encoder runs
``window`` times per window). The encoder only looks at one frame, so here it is taken
from an already trained model (``base``, e.g. the bundled ``nanowell_death``) and frozen:

1. :func:`track_series` runs it once per frame of every ground-truth track of a
   simulated acquisition (crops and motion as :func:`load_track_sequences` cuts them,
   normalised with the base card);
2. :func:`train_death_head` trains a new LSTM (optionally bidirectional) and its two
   heads on the windows the daemon feeds: one window ending at *every* frame of a track,
   ``window`` frames long, padded at the front by repeating the track's first frame.
   Loss: class-weighted cross-entropy of the sequence call (the pathway when the window's
   last frame is at or after onset, else live) + ``frame_weight`` x class-weighted
   per-frame cross-entropy (optionally with dropout on the LSTM's input, training only).
   Class weights are the square root of inverse frequency. The
   epoch kept is the one that scores best on validation tracks with the daemon's
   :class:`~livecell.analysis.fates.DeathWatch` at the config defaults (its arrest rule
   reading the steps on the chip, with chip motion): the fraction of deaths whose onset
   is within 2 frames minus twice the fraction of false deaths;
3. the frozen encoder and the new LSTM are saved as one :class:`SequenceClassifier`
   (``model.pt``), exported to ONNX with a parity check, and given a card with the base
   card's normalisation and the new window, and ``confusion_test.png`` of the window
   calls on the validation tracks.

With :func:`chip_motion_series` the LSTM reads
:data:`~livecell.tracking.motion.CHIP_MOTION_DESCRIPTORS` instead (speed, direction and
acceleration of the centroid on the chip, from ``stage.csv``; log speed): the camera's
speed carries the stage's drift, about as large as a slow cell's crawl, and hides the
moment a dying cell stops (docs/nanowell.md). The card then says so, and the daemon
feeds the same descriptors.
"""

from __future__ import annotations

import copy
import csv
import json
import shlex
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from livecell import __version__
from livecell.analysis.nanowell import death_watch
from livecell.config import NanowellConfig
from livecell.engine.export import PARITY_TOLERANCE
from livecell.engine.models.sequence import SequenceClassifier
from livecell.tracking.arrest import ArrestRule
from livecell.tracking.motion import CHIP_MOTION_DESCRIPTORS, chip_motion_descriptors
from livecell.training.metrics import classification_metrics, save_confusion_png
from livecell.training.sequence_train import card_sequence_normalisation, load_sequence_model
from livecell.training.sequences import (
    PATHWAY_CLASSES,
    load_track_sequences,
    read_chip_centroids,
)
from livecell.training.train import (
    CARD_FILE,
    CONFUSION_FILE,
    MODEL_FILE,
    ONNX_FILE,
    save_atomic,
    state_copy,
)

__all__ = [
    "CHIP_MOTION_NORMALISATION",
    "TrackSeries",
    "chip_motion_series",
    "daemon_windows",
    "death_watch_score",
    "track_series",
    "train_death_head",
]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

CHIP_MOTION_NORMALISATION = {0: (0.0, 1.5), 2: (0.0, 5.0)}
"""Column -> (mean, std) of the chip descriptors whose statistics are fixed, not the base
card's: log speed (0.1 px still to 30 px a frame spans about -2.3 to 3.4) and clipped
acceleration. Direction, area and eccentricity changes keep the base card's."""


@dataclass(frozen=True, slots=True, eq=False)
class TrackSeries:
    """One whole track: encoder features ``[L, F]``, normalised motion ``[L, 5]``, frame
    indices ``ts [L]``, ``dead [L]`` (1 from onset on) and the track's pathway index;
    with :func:`chip_motion_series`, ``chip_steps_px [L]``: the centroid's step on the
    chip into each frame (NaN at the first), what the daemon's arrest rule reads."""

    name: str
    features: FloatArray
    motion: FloatArray
    ts: IntArray
    dead: FloatArray
    pathway: int
    chip_steps_px: npt.NDArray[np.float64] | None = None

    @property
    def onset_t(self) -> int:
        """The first dead frame, -1 when the cell never dies within the track."""
        idx = np.flatnonzero(self.dead > 0.5)
        return int(self.ts[idx[0]]) if idx.size else -1


def daemon_windows(n: int, window: int) -> IntArray:
    """``[n, window]`` indices into a track of ``n`` frames: the window ending at each frame,
    padded at the front with index 0 (as ``TrackState.window_arrays`` pads)."""
    idx = np.arange(n)[:, None] - (window - 1) + np.arange(window)[None, :]
    out: IntArray = np.maximum(idx, 0).astype(np.int64)
    return out


def _longest_track(acquisition: Path) -> int:
    counts: Counter[tuple[str, str]] = Counter()
    with (acquisition / "ground_truth" / "tracks.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            counts[(row["position"], row["track"])] += 1
    return max(counts.values())


def track_series(acquisition: Path, base: Path) -> list[TrackSeries]:
    """Every ground-truth track of ``acquisition`` through the frozen encoder of ``base``."""
    model, card = load_sequence_model(base)
    norm = card_sequence_normalisation(card)
    longest = _longest_track(Path(acquisition))
    data = load_track_sequences(
        acquisition, crop_px=int(card["input"]["crops"]["height"]), window=longest, stride=longest
    )
    out: list[TrackSeries] = []
    with torch.inference_mode():
        for i in range(len(data)):
            ft = data.frame_t[i]
            pad = int(np.sum(ft == ft[0])) - 1
            crops, motion = norm.apply(data.crops[i, pad:], data.motion[i, pad:])
            x = torch.from_numpy(np.ascontiguousarray(crops))
            feats = torch.cat(
                [model.encoder.forward_features(x[s : s + 256]) for s in range(0, x.shape[0], 256)]
            )
            out.append(
                TrackSeries(
                    name=data.tracks[i],
                    features=feats.numpy().astype(np.float32),
                    motion=np.ascontiguousarray(motion, dtype=np.float32),
                    ts=ft[pad:].copy(),
                    dead=data.frame_death[i, pad:].copy(),
                    pathway=int(data.track_pathway[i]),
                )
            )
        del data
    return out


def chip_motion_series(
    tracks: Sequence[TrackSeries], acquisition: Path, base_card: dict[str, Any]
) -> list[TrackSeries]:
    """``tracks`` (of ``acquisition``, from :func:`track_series`) with speed, direction and
    acceleration taken from the centroids on the chip: ``tracks.csv`` minus the stage
    drift of ``stage.csv``, as :data:`CHIP_MOTION_DESCRIPTORS`, normalised with
    :data:`CHIP_MOTION_NORMALISATION` and the base card, and with their steps on the chip.
    Area and eccentricity changes do not depend on the frame of reference and stay."""
    chip_yx = read_chip_centroids(acquisition)
    stats = base_card["input"]["normalisation"]["motion"]
    mean, std = np.array(stats["mean"]), np.array(stats["std"])
    for column, (m, sd) in CHIP_MOTION_NORMALISATION.items():
        mean[column], std[column] = m, sd
    out = []
    for tr in tracks:
        _, position, track = tr.name.rsplit("/", 2)
        yx = np.array([chip_yx[(position, int(track), int(t))] for t in tr.ts])
        ones = np.ones(len(yx))
        chip = chip_motion_descriptors(yx, ones, np.zeros(len(yx)))
        motion = tr.motion.copy()
        motion[:, :3] = (chip[:, :3] - mean[:3]) / std[:3]
        steps = np.full(len(yx), np.nan)
        steps[1:] = np.hypot(*np.diff(yx, axis=0).T)
        out.append(replace(tr, motion=motion.astype(np.float32), chip_steps_px=steps))
    return out


class _Head(torch.nn.Module):
    """The LSTM and heads of a :class:`SequenceClassifier`, on precomputed features."""

    def __init__(self, model: SequenceClassifier, input_dropout: float = 0.0) -> None:
        super().__init__()
        self.input_dropout = input_dropout
        self.lstm = model.lstm
        self.frame_head = model.frame_head
        self.sequence_head = model.sequence_head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.nn.functional.dropout(x, self.input_dropout, training=self.training)
        hidden, _ = self.lstm(x)
        frame: torch.Tensor = self.frame_head(hidden)
        seq: torch.Tensor = self.sequence_head(hidden[:, -1])
        return frame, seq


def _frame_table(
    tracks: Sequence[TrackSeries], window: int
) -> tuple[FloatArray, IntArray, IntArray]:
    """Every frame of ``tracks`` as one table: inputs ``[M, F + 5]`` and per-frame labels
    ``[M]``, with the table rows ``[N, window]`` of every daemon window. Windows are cut
    from the table batch by batch: all of them at once take ``window`` times the memory
    (training on 7,825 tracks took 13.5 GB that way, about 3 GB this way)."""
    xs, labels, rows, start = [], [], [], 0
    for tr in tracks:
        xs.append(np.concatenate([tr.features, tr.motion], axis=1))
        labels.append(_frame_labels(tr))
        rows.append(daemon_windows(tr.ts.size, window) + start)
        start += tr.ts.size
    return (
        np.concatenate(xs).astype(np.float32),
        np.concatenate(labels),
        np.concatenate(rows),
    )


def _frame_labels(tr: TrackSeries) -> IntArray:
    """Each frame's class: the track's pathway from onset on, else live. The daemon
    window ending at a frame takes that frame's label."""
    out: IntArray = np.where(tr.dead > 0.5, tr.pathway, 0).astype(np.int64)
    return out


def _window_labels(tracks: Sequence[TrackSeries]) -> IntArray:
    """The label of every daemon window of ``tracks`` (one window ends at each frame)."""
    return np.concatenate([_frame_labels(tr) for tr in tracks])


def _sqrt_weights(labels: IntArray, k: int) -> FloatArray:
    counts = np.bincount(labels.reshape(-1), minlength=k).astype(np.float64)
    w = np.where(counts > 0, np.sqrt(counts.sum() / np.maximum(counts, 1)), 0.0)
    w = w / w[counts > 0].mean()
    out: FloatArray = w.astype(np.float32)
    return out


def death_watch_score(
    tracks: Sequence[TrackSeries],
    frame_probs: Sequence[FloatArray],
    window_probs: Sequence[FloatArray],
    window: int,
    config: NanowellConfig | None = None,
) -> dict[str, float]:
    """The daemon's :class:`DeathWatch` (``config``, default the defaults) per track over
    its daemon windows (per track: ``frame_probs [L, W, K]``, ``window_probs [L, K]``),
    the arrest rule reading ``chip_steps_px`` where the series has them: deaths, detected,
    onsets within 2 frames (share of all deaths) and false deaths (share of the others).
    A track that lasts to the last frame of its position (``<acquisition>/<position>`` of
    its name) is open when the run ends, so its held apoptosis is made then, as the
    daemon's ``finish`` makes it (:meth:`DeathWatch.decide_held`).
    A window no longer than the apoptosis hold is scored with the hold cut to
    ``window - 1`` (the daemon refuses a longer one: its onsets lie inside the window)."""
    config = config or NanowellConfig()
    if config.death_apoptosis_hold_frames >= window:
        config = config.model_copy(update={"death_apoptosis_hold_frames": window - 1})
    last_t: dict[str, int] = {}
    for tr in tracks:
        position = _position_of(tr)
        last_t[position] = max(last_t.get(position, -1), int(tr.ts[-1]))
    deaths = detected = within = live = false = 0
    for tr, fp, wp in zip(tracks, frame_probs, window_probs, strict=True):
        watch = death_watch(PATHWAY_CLASSES, config)
        idx = daemon_windows(tr.ts.size, window)
        for j in range(tr.ts.size):
            watch.update(tr.ts[idx[j]], fp[j], wp[j], _steps_seen(tr, j, window, watch.arrest))
            if watch.death is not None:
                break
        if int(tr.ts[-1]) == last_t[_position_of(tr)]:
            watch.decide_held()
        onset = tr.onset_t
        if onset >= 0:
            deaths += 1
            if watch.death is not None:
                detected += 1
                within += abs(watch.death.onset_t - onset) <= 2
        else:
            live += 1
            false += watch.death is not None
    return {
        "deaths": float(deaths),
        "detected": float(detected),
        "within_2_frames": within / max(deaths, 1),
        "false_death_rate": false / max(live, 1),
    }


def _position_of(track: TrackSeries) -> str:
    """``<acquisition>/<position>`` of a track named ``<acquisition>/<position>/<track id>``."""
    return track.name.rsplit("/", 1)[0]


def _steps_seen(
    tr: TrackSeries, j: int, window: int, arrest: ArrestRule | None
) -> dict[int, float] | None:
    """The chip steps the daemon holds at frame ``j`` of ``tr``: those into the last
    ``window + reach`` positions (``TrackState.steps_px``)."""
    if arrest is None or tr.chip_steps_px is None:
        return None
    first = max(1, j - (window + arrest.reach_frames) + 2)
    return {int(tr.ts[i]): float(tr.chip_steps_px[i]) for i in range(first, j + 1)}


def _predict(
    head: _Head, tracks: Sequence[TrackSeries], window: int
) -> tuple[list[FloatArray], list[FloatArray]]:
    frames, seqs = [], []
    head.eval()
    with torch.inference_mode():
        for tr in tracks:
            x = np.concatenate([tr.features, tr.motion], axis=1)[daemon_windows(tr.ts.size, window)]
            f, s = head(torch.from_numpy(np.ascontiguousarray(x)))
            frames.append(torch.softmax(f, -1).numpy())
            seqs.append(torch.softmax(s, -1).numpy())
    return frames, seqs


def train_death_head(
    train: Sequence[TrackSeries],
    val: Sequence[TrackSeries],
    *,
    base: Path,
    out: Path,
    window: int = 24,
    hidden_size: int = 64,
    bidirectional: bool = True,
    epochs: int = 12,
    batch_size: int = 128,
    lr: float = 2e-3,
    frame_weight: float = 1.0,
    input_dropout: float = 0.0,
    seed: int = 0,
    test: Sequence[TrackSeries] = (),
    argv: Sequence[str] = (),
    sources: Sequence[str] = (),
    progress: bool = True,
    chip_motion: bool = False,
) -> dict[str, Any]:
    """Train the LSTM and heads on ``train`` (encoder of ``base`` frozen); write ``out``.

    ``val`` chooses the epoch; ``test`` (held-out acquisitions, never used for a choice)
    is only measured, like ``val``, into the card's ``metrics``. ``chip_motion``: the
    series carry :func:`chip_motion_series`'s motion, and the card says so. Returns the
    card written to ``out/model_card.json``.
    """
    base_model, base_card = load_sequence_model(base)
    k = len(base_card["classes"])
    torch.manual_seed(seed)
    model = SequenceClassifier(
        image_channels=base_model.image_channels,
        num_classes=k,
        hidden_size=hidden_size,
        bidirectional=bidirectional,
    )
    model.encoder.load_state_dict(base_model.encoder.state_dict())
    head = _Head(model, input_dropout)
    x, labels, rows = _frame_table(train, window)
    seq_w = _sqrt_weights(labels, k)  # one window ends at each frame
    frame_w = _sqrt_weights(labels[rows], k)
    seq_loss = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(seq_w))
    frame_loss = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(frame_w))
    optimiser = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs)
    best, best_epoch, best_state = -np.inf, -1, state_copy(head)
    history: list[dict[str, float]] = []
    started = time.monotonic()
    for epoch in range(epochs):
        head.train()
        order = np.random.default_rng([seed, epoch]).permutation(rows.shape[0])
        total = 0.0
        for s in range(0, order.size, batch_size):
            b = rows[order[s : s + batch_size]]
            f, q = head(torch.from_numpy(x[b]))
            loss = seq_loss(q, torch.from_numpy(labels[b[:, -1]])) + frame_weight * frame_loss(
                f.reshape(-1, k), torch.from_numpy(labels[b].reshape(-1))
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * b.shape[0]
        sched.step()
        fp, wp = _predict(head, val, window)
        m = death_watch_score(val, fp, wp, window)
        score = m["within_2_frames"] - 2.0 * m["false_death_rate"]
        history.append(
            {"epoch": float(epoch), "train_loss": total / order.size, "val_score": score, **m}
        )
        if score > best:
            best, best_epoch, best_state = score, epoch, state_copy(head)
        if progress:
            print(
                f"epoch {epoch + 1}/{epochs}: loss {total / order.size:.4f}, val within 2 "
                f"{m['within_2_frames']:.3f}, false {m['false_death_rate']:.3f} "
                f"({time.monotonic() - started:.0f} s)",
                flush=True,
            )
    head.load_state_dict(best_state)
    model.eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_atomic(state_copy(model), out / MODEL_FILE)

    from livecell.engine.sequence_export import check_sequence_parity, export_sequence_onnx

    height, width = (
        int(base_card["input"]["crops"]["height"]),
        int(base_card["input"]["crops"]["width"]),
    )
    export_sequence_onnx(
        model,
        out / ONNX_FILE,
        in_channels=model.in_channels,
        crop_px=(height, width),
        window=window,
    )
    g = torch.Generator().manual_seed(seed)
    probe_crops = torch.randn(4, window, model.in_channels, height, width, generator=g).numpy()
    probe_motion = torch.randn(4, window, 5, generator=g).numpy()
    parity = check_sequence_parity(model, out / ONNX_FILE, probe_crops, probe_motion)
    if not parity < PARITY_TOLERANCE:
        raise ValueError(f"ONNX Runtime differs from torch by {parity:.2e}")

    card: dict[str, Any] = copy.deepcopy(base_card)
    card["created_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    card["livecell_version"] = __version__
    card["model"]["hidden_size"] = hidden_size
    card["model"]["bidirectional"] = bidirectional
    card["input"]["crops"]["window"] = window
    card["input"]["crops"]["stride"] = 1
    if chip_motion:
        card["input"]["motion"]["descriptors"] = list(CHIP_MOTION_DESCRIPTORS)
        stats = card["input"]["normalisation"]["motion"]
        for column, (mean, std) in CHIP_MOTION_NORMALISATION.items():
            stats["mean"][column], stats["std"][column] = mean, std
    card["training"] = {
        "method": "LSTM and heads retrained on daemon windows (one ending at every frame), "
        "per-frame encoder frozen from the base model",
        "base_model": str(base),
        "base_training": base_card.get("training"),
        "epochs": epochs,
        "best_epoch": best_epoch + 1,
        "batch_size": batch_size,
        "optimizer": "AdamW, cosine schedule",
        "input_dropout": input_dropout,
        "lr": lr,
        "loss": f"sqrt-inverse-frequency weighted cross-entropy on the window call + "
        f"{frame_weight} x the same on per-frame calls",
        "class_weights": dict(zip(base_card["classes"], map(float, seq_w), strict=True)),
        "selection": "val DeathWatch at the config defaults (arrest rule on chip steps "
        "where the series have them): within-2-frames onset fraction - 2 x false rate",
        "seed": seed,
        "history": history,
    }
    card["data"] = {
        "kind": "simulated ground-truth tracks, every daemon window",
        "sources": list(sources),
        "train": {"tracks": len(train), "windows": int(rows.shape[0])},
        "val": {"tracks": len(val), "names": sorted({t.name.split("/")[0] for t in val})},
    }
    fp, wp = _predict(head, val, window)
    val_y = _window_labels(val)
    val_metrics = classification_metrics(val_y, np.concatenate(wp), tuple(base_card["classes"]))
    save_confusion_png(
        val_metrics["confusion_matrix"],
        tuple(base_card["classes"]),
        out / CONFUSION_FILE,
        title=f"validation ({val_metrics['n']} daemon windows), "
        f"balanced accuracy {val_metrics['balanced_accuracy']:.3f}",
    )
    card["metrics"] = {
        "val": val_metrics,
        "val_death_watch": death_watch_score(val, fp, wp, window),
    }
    if test:
        fp, wp = _predict(head, test, window)
        test_y = _window_labels(test)
        classes = tuple(base_card["classes"])
        card["metrics"]["test"] = classification_metrics(test_y, np.concatenate(wp), classes)
        card["metrics"]["test_death_watch"] = death_watch_score(test, fp, wp, window)
        card["data"]["test"] = {
            "tracks": len(test),
            "names": sorted({t.name.split("/")[0] for t in test}),
        }
    card["files"] = {"model": MODEL_FILE, "onnx": ONNX_FILE, "confusion_test": CONFUSION_FILE}
    card["onnx"]["parity_max_abs_diff"] = parity
    card["command"] = shlex.join(argv)
    card["argv"] = list(argv)
    (out / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return card
