"""Training the per-track CNN-LSTM on :class:`~livecell.training.sequences.SequenceSet` windows.

:func:`train_sequence_model` trains one task, ``cell_type`` (effector / target) or
``death`` (live / apoptosis / necroptosis / necrosis), on CPU:

- a grouped train/val/test split by acquisition/position (``grouped_split``), never by
  window, so overlapping windows of one track never straddle splits;
- image channels standardised with statistics of the training windows (the mask channel
  is left 0/1), motion descriptors standardised per column the same way;
- loss: class-weighted cross-entropy on the sequence call, plus ``frame_weight`` times the
  class-weighted cross-entropy of the per-frame calls (cell type at every frame; for
  death the pathway from ``onset_t`` on, ``live`` before), plus for death
  ``monotone_weight`` times :func:`monotone_death_penalty` of the per-frame death
  probability (``1 - p(live)``);
- early stopping on validation balanced accuracy of the sequence call.

It writes into ``out``: ``model.pt`` (the best epoch's ``state_dict``; read back with
``torch.load(..., weights_only=True)`` by :func:`load_sequence_model`),
``model_card.json``, ``confusion_test.png`` and ``model.onnx``
(:func:`~livecell.engine.sequence_export.export_sequence_onnx`), checked against torch
on held-out windows; a difference of 1e-4 or more raises.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from tqdm import tqdm

from livecell.engine.export import PARITY_TOLERANCE
from livecell.engine.models.registry import build_sequence_model
from livecell.engine.models.sequence import (
    MOTION_DESCRIPTORS,
    SequenceClassifier,
    monotone_death_penalty,
)
from livecell.training.datasets import FloatArray, Normalisation
from livecell.training.metrics import classification_metrics, save_confusion_png
from livecell.training.sequences import SequenceSet, SequenceTask, concatenate_sequences
from livecell.training.splits import grouped_split
from livecell.training.train import (
    CARD_FILE,
    CONFUSION_FILE,
    MODEL_FILE,
    ONNX_FILE,
    SPLITS,
    EpochRecord,
    card_header,
    class_weights,
    save_atomic,
    state_copy,
    write_card,
)

__all__ = [
    "PARITY_TOLERANCE",
    "SequenceNormalisation",
    "SequenceTrainResult",
    "load_sequence_model",
    "predict_sequences",
    "train_sequence_model",
]

ARCH = "cnn-lstm"


@dataclass(frozen=True, slots=True)
class SequenceNormalisation:
    """What the model expects: ``(crops - image.mean) / image.std`` per channel (the mask
    channel has mean 0, std 1) and ``(motion - motion_mean) / motion_std`` per column."""

    image: Normalisation
    motion_mean: tuple[float, ...]
    motion_std: tuple[float, ...]

    @classmethod
    def fit(cls, crops: FloatArray, motion: FloatArray) -> SequenceNormalisation:
        """Statistics of training windows ``crops [N, T, C+1, H, W]``, ``motion [N, T, 5]``."""
        if crops.shape[0] == 0:
            raise ValueError("cannot fit normalisation on no windows")
        images = crops[:, :, :-1]
        image = Normalisation.fit(images.reshape(-1, *images.shape[2:]))
        m = motion.reshape(-1, motion.shape[-1]).astype(np.float64)
        std = m.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(
            image=Normalisation((*image.mean, 0.0), (*image.std, 1.0)),
            motion_mean=tuple(float(v) for v in m.mean(axis=0)),
            motion_std=tuple(float(v) for v in std),
        )

    def apply(self, crops: FloatArray, motion: FloatArray) -> tuple[FloatArray, FloatArray]:
        mean = np.asarray(self.motion_mean, dtype=np.float32)
        std = np.asarray(self.motion_std, dtype=np.float32)
        moved: FloatArray = ((motion - mean) / std).astype(np.float32, copy=False)
        return self.image.apply(crops), moved

    def to_dict(self) -> dict[str, Any]:
        return {
            "crops": self.image.to_dict(),
            "motion": {"mean": list(self.motion_mean), "std": list(self.motion_std)},
        }


@dataclass(frozen=True, slots=True, eq=False)
class SequenceTrainResult:
    out_dir: Path
    model: SequenceClassifier
    card: dict[str, Any]
    normalisation: SequenceNormalisation
    onnx_parity_max_abs_diff: float


def predict_sequences(
    model: torch.nn.Module, crops: FloatArray, motion: FloatArray, *, batch_size: int = 32
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Softmax ``(frame [N, T, K], sequence [N, K])`` for normalised inputs, in eval mode."""
    was_training = model.training
    model.eval()
    frames, seqs = [], []
    try:
        with torch.inference_mode():
            for start in range(0, crops.shape[0], batch_size):
                f, s = model(
                    torch.from_numpy(np.ascontiguousarray(crops[start : start + batch_size])),
                    torch.from_numpy(np.ascontiguousarray(motion[start : start + batch_size])),
                )
                frames.append(torch.softmax(f, dim=-1).numpy())
                seqs.append(torch.softmax(s, dim=-1).numpy())
    finally:
        model.train(was_training)
    if not seqs:
        return np.zeros((0, 0, 0), np.float32), np.zeros((0, 0), np.float32)
    return np.concatenate(frames).astype(np.float32), np.concatenate(seqs).astype(np.float32)


def _frame_death_metrics(
    frame_death: FloatArray, frame_proba: npt.NDArray[np.float32]
) -> dict[str, Any]:
    """Per-frame dead/alive calls (dead = ``1 - p(live) > 0.5``), over all frames."""
    truth = (frame_death.reshape(-1) > 0.5).astype(np.int64)
    p_dead = 1.0 - frame_proba[..., 0].reshape(-1)
    proba = np.stack([1.0 - p_dead, p_dead], axis=1)
    m = classification_metrics(truth, proba, ("live", "dead"))
    return {k: m[k] for k in ("n", "accuracy", "balanced_accuracy", "macro_auroc")}


def _split(
    data: SequenceSet,
    task: SequenceTask,
    fractions: tuple[float, float, float],
    seed: int,
    test_data: SequenceSet | None,
) -> tuple[SequenceSet, dict[str, npt.NDArray[np.int64]]]:
    """The windows to train on with their train/val/test indices, grouped."""
    labels = data.task_labels(task)[0].tolist()
    if test_data is None:
        parts = grouped_split(data.groups, labels=labels, fractions=fractions, seed=seed)
        return data, dict(zip(SPLITS, parts, strict=True))
    shared = set(data.groups) & set(test_data.groups)
    if shared:
        raise ValueError(
            f"the test data shares groups with the training data: {sorted(shared)} (groups "
            "are named by acquisition folder and position: two folders of one name count as "
            "one acquisition, so rename one if they differ)"
        )
    train_idx, val_idx, _ = grouped_split(
        data.groups, labels=labels, fractions=(fractions[0], fractions[1], 0.0), seed=seed
    )
    n = len(data.groups)
    test_idx = np.arange(n, n + len(test_data.groups))
    combined = concatenate_sequences([data, test_data])
    return combined, {"train": train_idx, "val": val_idx, "test": test_idx}


def train_sequence_model(
    data: SequenceSet,
    *,
    task: SequenceTask,
    out: Path,
    epochs: int = 10,
    batch_size: int = 16,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    patience: int = 3,
    monotone_weight: float = 0.1,
    frame_weight: float = 0.5,
    hidden_size: int = 64,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    argv: Sequence[str] = (),
    provenance: Mapping[str, Any] | None = None,
    progress: bool = True,
    test_data: SequenceSet | None = None,
) -> SequenceTrainResult:
    """Train the CNN-LSTM for ``task`` on ``data``; write the artefacts to ``out``.

    With ``test_data`` (for example acquisitions with seeds never trained on) that is
    the test split and ``data`` is split into train and val only. Raises ``ValueError``
    for bad settings, when the groups cannot fill train, val and test, or when the
    ONNX export differs from torch by ``PARITY_TOLERANCE`` or more.
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("patience", patience)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if not lr > 0 or weight_decay < 0 or monotone_weight < 0 or frame_weight < 0:
        raise ValueError("lr must be positive; weight_decay and loss weights non-negative")
    data, split_idx = _split(data, task, fractions, seed, test_data)
    labels, classes = data.task_labels(task)
    frame_labels = data.frame_labels(task)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, idx in split_idx.items():
        if idx.size == 0:
            raise ValueError(
                f"the {name} split is empty: {len(set(data.groups))} group(s) cannot fill "
                "train, val and test (add positions or acquisitions)"
            )
    split_groups = {name: sorted({data.groups[i] for i in idx}) for name, idx in split_idx.items()}
    train_idx = split_idx["train"]
    norm = SequenceNormalisation.fit(data.crops[train_idx], data.motion[train_idx])
    crops, motion = norm.apply(data.crops, data.motion)
    k = len(classes)
    weights = class_weights(labels[train_idx], k)
    frame_weights = class_weights(frame_labels[train_idx].reshape(-1), k)

    torch.manual_seed(seed)
    model = build_sequence_model(
        image_channels=data.image_channels, num_classes=k, hidden_size=hidden_size
    )
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sequence_loss = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(weights))
    frame_loss = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(frame_weights))

    record = EpochRecord(best_state=state_copy(model))
    val_idx = split_idx["val"]
    stopped_early = False
    for epoch in range(epochs):
        order = train_idx[np.random.default_rng([seed, epoch]).permutation(train_idx.size)]
        batches = [order[i : i + batch_size] for i in range(0, order.size, batch_size)]
        model.train()
        total, seen = 0.0, 0
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for b in bar:
            if b.size < 2:
                continue  # batch norm needs two windows
            frame_logits, sequence_logits = model(
                torch.from_numpy(crops[b]), torch.from_numpy(motion[b])
            )
            loss = sequence_loss(sequence_logits, torch.from_numpy(labels[b]))
            loss = loss + frame_weight * frame_loss(
                frame_logits.reshape(-1, k), torch.from_numpy(frame_labels[b].reshape(-1))
            )
            if task == "death" and monotone_weight > 0:
                p_dead = 1.0 - torch.softmax(frame_logits, dim=-1)[..., 0]
                loss = loss + monotone_weight * monotone_death_penalty(p_dead)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * b.size
            seen += int(b.size)
            bar.set_postfix(loss=f"{total / seen:.4f}")
        _, val_proba = predict_sequences(model, crops[val_idx], motion[val_idx])
        score = float(
            classification_metrics(labels[val_idx], val_proba, classes)["balanced_accuracy"]
        )
        record.add_epoch(model, epoch, total / max(seen, 1), score, say=progress)
        if record.stale >= patience:
            stopped_early = True
            break

    model.load_state_dict(record.best_state)
    model.eval()
    save_atomic(record.best_state, out / MODEL_FILE)

    metrics: dict[str, Any] = {}
    for name, idx in split_idx.items():
        frame_proba, seq_proba = predict_sequences(model, crops[idx], motion[idx])
        metrics[name] = classification_metrics(labels[idx], seq_proba, classes)
        if task == "death":
            metrics[name]["frame_death"] = _frame_death_metrics(data.frame_death[idx], frame_proba)
    test = metrics["test"]
    save_confusion_png(
        test["confusion_matrix"],
        classes,
        out / CONFUSION_FILE,
        title=f"held-out test ({test['n']} windows), "
        f"balanced accuracy {test['balanced_accuracy']:.3f}",
    )

    from livecell.engine.sequence_export import check_sequence_parity, export_sequence_onnx

    height, width = data.crop_size
    export_sequence_onnx(
        model,
        out / ONNX_FILE,
        in_channels=data.image_channels + 1,
        crop_px=(height, width),
        window=data.window,
    )
    probe = split_idx["test"][:8]
    parity = check_sequence_parity(model, out / ONNX_FILE, crops[probe], motion[probe])
    if not parity < PARITY_TOLERANCE:
        raise ValueError(
            f"{out / ONNX_FILE}: ONNX Runtime differs from torch by {parity:.2e} "
            f"(tolerance {PARITY_TOLERANCE:.0e})"
        )

    card = {
        **card_header(f"sequence {task}"),
        "classes": list(classes),
        "arch": ARCH,
        "model": {
            "builder": "livecell.engine.models.registry.build_sequence_model",
            "image_channels": data.image_channels,
            "num_classes": k,
            "hidden_size": hidden_size,
        },
        "input": {
            "crops": {
                "layout": "NTCHW",
                "dtype": "float32",
                "channels": data.image_channels + 1,
                "channel_names": [*(f"image{i}" for i in range(data.image_channels)), "mask"],
                "height": height,
                "width": width,
                "window": data.window,
                "stride": data.stride,
            },
            "motion": {
                "layout": "NTF",
                "dtype": "float32",
                "descriptors": list(MOTION_DESCRIPTORS),
            },
            "normalisation": norm.to_dict(),
            "note": "crops centred on the cell, mask = the cell's label; normalise crops per "
            "channel and motion per descriptor, (x - mean) / std; pad short tracks at the "
            "front by repeating the first frame; model.pt gives logits, model.onnx softmax",
        },
        "training": {
            "epochs": epochs,
            "epochs_run": len(record.history),
            "best_epoch": record.best_epoch + 1,
            "stopped_early": stopped_early,
            "patience": patience,
            "early_stopping_metric": "val balanced_accuracy (sequence call)",
            "batch_size": batch_size,
            "optimizer": "AdamW",
            "lr": lr,
            "weight_decay": weight_decay,
            "loss": "class-weighted cross-entropy on the sequence call"
            + f" + {frame_weight} x per-frame cross-entropy"
            + (f" + {monotone_weight} x monotone death penalty" if task == "death" else ""),
            "class_weights": {c: float(w) for c, w in zip(classes, weights, strict=True)},
            "seed": seed,
            "history": record.history,
        },
        "data": {
            "kind": "simulated track sequences",
            "sources": list(data.sources),
            **dict(provenance or {}),
            "split": {
                "grouped_by": "acquisition/position",
                "fractions": list(fractions),
                "seed": seed,
            },
            "class_counts": {
                c: int(n) for c, n in zip(classes, np.bincount(labels, minlength=k), strict=True)
            },
            "splits": {
                name: {
                    "n": int(idx.size),
                    "tracks": len({data.tracks[i] for i in idx}),
                    "class_counts": {
                        c: int(n)
                        for c, n in zip(classes, np.bincount(labels[idx], minlength=k), strict=True)
                    },
                    "groups": split_groups[name],
                }
                for name, idx in split_idx.items()
            },
        },
        "metrics": metrics,
        "onnx": {
            "file": ONNX_FILE,
            "opset": 17,
            "inputs": ["crops", "motion"],
            "outputs": ["frame_probabilities", "sequence_probabilities"],
            "dynamic_axes": {"batch": 0, "steps": 1},
            "parity_max_abs_diff": parity,
        },
        "files": {"model": MODEL_FILE, "onnx": ONNX_FILE, "confusion_test": CONFUSION_FILE},
        "command": shlex.join(argv),
        "argv": list(argv),
    }
    write_card(card, out)
    return SequenceTrainResult(
        out_dir=out, model=model, card=card, normalisation=norm, onnx_parity_max_abs_diff=parity
    )


def load_sequence_model(out: Path) -> tuple[SequenceClassifier, dict[str, Any]]:
    """The trained CNN-LSTM (eval mode) and its card, from ``model.pt`` (``weights_only=True``)."""
    out = Path(out)
    card: dict[str, Any] = json.loads((out / CARD_FILE).read_text())
    spec = card["model"]
    model = SequenceClassifier(
        image_channels=spec["image_channels"],
        num_classes=spec["num_classes"],
        hidden_size=spec["hidden_size"],
        bidirectional=bool(spec.get("bidirectional", False)),
    )
    model.load_state_dict(torch.load(out / MODEL_FILE, weights_only=True))
    model.eval()
    return model, card


def card_sequence_normalisation(card: Mapping[str, Any]) -> SequenceNormalisation:
    """The :class:`SequenceNormalisation` a card records."""
    stats = card["input"]["normalisation"]
    return SequenceNormalisation(
        image=Normalisation(tuple(stats["crops"]["mean"]), tuple(stats["crops"]["std"])),
        motion_mean=tuple(stats["motion"]["mean"]),
        motion_std=tuple(stats["motion"]["std"]),
    )
