"""The training loop: grouped split, normalisation, weighted loss, early stopping, resume.

:func:`train` takes a :class:`~livecell.training.datasets.PatchSet` and writes into
``out_dir``:

- ``checkpoint.pt`` after every epoch (model, optimiser, best model so far, early-stopping
  state, history, and a fingerprint of the run's settings and split, checked on resume);
- ``model.pt``: the ``state_dict`` of the best epoch (highest validation balanced accuracy);
- ``model_card.json`` (see :func:`model_card`) and ``confusion_test.png``;
- ``model.onnx`` when asked (``livecell.engine.export.export_onnx``: softmax output,
  dynamic batch; its input is the *normalised* patch, as for ``model.pt``).

Everything is saved with ``torch.save`` of tensors, numbers, strings, lists and dicts,
and read back with ``torch.load(..., weights_only=True)`` only: no pickled objects.
Randomness: torch is seeded before the model is built; each epoch's shuffle uses a
generator seeded from (seed, epoch) and each patch's augmentation a numpy generator
seeded from (seed, epoch, index), so a resumed run draws what an unbroken one would.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from livecell import __version__
from livecell.engine.bundled import PATCH_TASK, card_task
from livecell.training.datasets import (
    AugmentParams,
    FloatArray,
    Normalisation,
    PatchSet,
    augment,
    concatenate,
)
from livecell.training.metrics import classification_metrics, save_confusion_png
from livecell.training.splits import grouped_split

CARD_SCHEMA_VERSION = 1
MODEL_FILE = "model.pt"
CARD_FILE = "model_card.json"
CHECKPOINT_FILE = "checkpoint.pt"
CONFUSION_FILE = "confusion_test.png"
ONNX_FILE = "model.onnx"
SPLITS = ("train", "val", "test")


class ModelFactory(Protocol):
    def __call__(self, arch: str, *, in_channels: int, num_classes: int) -> torch.nn.Module: ...


def registry_model(arch: str, *, in_channels: int, num_classes: int) -> torch.nn.Module:
    """A network from ``livecell.engine.models`` (the default factory)."""
    from livecell.engine.models.registry import build_model

    model: torch.nn.Module = build_model(arch, in_channels=in_channels, num_classes=num_classes)
    return model


class ResumeError(ValueError):
    """``resume`` was asked for but the checkpoint is missing or from different settings."""


CHECKPOINT_KEYS = ("fingerprint", "model", "optimizer", "epoch")


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint ``train`` writes, or :class:`ResumeError` saying what is wrong with it."""
    try:
        ckpt = torch.load(path, weights_only=True)
    except Exception as exc:  # torn, foreign or not a torch file: torch raises many kinds
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ResumeError(f"{path}: not a checkpoint livecell can read ({type(exc).__name__}: "
                          f"{first})") from None  # fmt: skip
    if not isinstance(ckpt, dict) or not all(key in ckpt for key in CHECKPOINT_KEYS):
        raise ResumeError(
            f"{path}: not a livecell train checkpoint (it needs {', '.join(CHECKPOINT_KEYS)}); "
            "start again without --resume"
        )
    return ckpt


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Settings of one training run; CPU-friendly defaults."""

    arch: str = "compact"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    patience: int = 3
    workers: int = 0
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    augment: AugmentParams | None = field(default_factory=AugmentParams)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise ValueError(f"workers must not be negative, got {self.workers}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(
                f"lr must be positive and weight_decay >= 0: {self.lr}, {self.weight_decay}"
            )


@dataclass(frozen=True, slots=True, eq=False)
class TrainResult:
    out_dir: Path
    model: torch.nn.Module
    card: dict[str, Any]


class _Patches(Dataset[tuple[torch.Tensor, int]]):
    """Normalised patches with per-(epoch, index) seeded augmentation."""

    def __init__(
        self,
        images: FloatArray,
        labels: npt.NDArray[np.int64],
        params: AugmentParams | None,
        seed: int,
    ) -> None:
        self.images, self.labels, self.params, self.seed = images, labels, params, seed
        self.epoch = 0

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self.images[i]
        if self.params is not None:
            x = augment(x, np.random.default_rng([self.seed, self.epoch, i]), self.params)
        return torch.from_numpy(np.array(x, dtype=np.float32)), int(self.labels[i])


def class_weights(labels: npt.NDArray[np.int64], num_classes: int) -> npt.NDArray[np.float32]:
    """Inverse frequency, ``n / (k * count)`` over the ``k`` classes present; 0 for absent."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return weights.astype(np.float32)


def cosine_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """Cosine annealing from ``base_lr`` at epoch 0 towards 0 at ``epochs``.

    A pure function of the epoch, so a resumed run (even with more epochs) follows
    the same schedule as an unbroken one.
    """
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * epoch / epochs))


def predict_proba(
    model: torch.nn.Module, images: FloatArray, *, batch_size: int = 256
) -> npt.NDArray[np.float32]:
    """Softmax probabilities ``[N, K]`` for already-normalised ``images``, in eval mode."""
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.inference_mode():
            for start in range(0, images.shape[0], batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
                out.append(torch.softmax(model(batch), dim=1).numpy())
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)


def _fingerprint(config: TrainConfig, data: PatchSet, split_groups: Mapping[str, list[str]]) -> str:
    settings = {
        "arch": config.arch,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "weight_decay": config.weight_decay,
        "seed": config.seed,
        "augment": None if config.augment is None else asdict(config.augment),
        "classes": list(data.classes),
        "shape": list(data.images.shape[1:]),
        "n": len(data),
        "splits": split_groups,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def save_atomic(obj: Mapping[str, Any], path: Path) -> None:
    """``torch.save`` to a temporary name, then rename: a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(dict(obj), tmp)
    os.replace(tmp, path)


def card_header(task: str) -> dict[str, Any]:
    """The fields every model card starts with: schema, livecell version, when, what task."""
    return {
        "schema_version": CARD_SCHEMA_VERSION,
        "livecell_version": __version__,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "task": task,
    }


def write_card(card: Mapping[str, Any], out_dir: Path) -> None:
    """``out_dir/model_card.json``, written whole or not at all."""
    tmp = out_dir / (CARD_FILE + ".tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(tmp, out_dir / CARD_FILE)


def state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of ``model``'s weights (the best epoch so far)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass
class EpochRecord:
    """Early stopping on the validation score, shared by the trainers: each epoch's
    history row, the best epoch and a copy of its weights, and ``stale``, the epochs
    since the best."""

    best_state: dict[str, torch.Tensor]
    best_score: float = -1.0
    best_epoch: int = -1
    stale: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    def add_epoch(
        self, model: torch.nn.Module, epoch: int, train_loss: float, score: float, *, say: bool
    ) -> None:
        """Add epoch ``epoch``'s mean training loss and validation balanced accuracy."""
        self.history.append(
            {"epoch": float(epoch), "train_loss": train_loss, "val_balanced_accuracy": score}
        )
        if score > self.best_score:
            self.best_score, self.best_epoch, self.stale = score, epoch, 0
            self.best_state = state_copy(model)
        else:
            self.stale += 1
        if say:
            tqdm.write(
                f"epoch {epoch + 1}: loss {train_loss:.4f}, "
                f"val balanced accuracy {score:.3f} (best {self.best_score:.3f})"
            )


def train(
    data: PatchSet,
    config: TrainConfig,
    out_dir: Path,
    *,
    resume: bool = False,
    model_factory: ModelFactory = registry_model,
    onnx: bool = False,
    argv: Sequence[str] = (),
    provenance: Mapping[str, Any] | None = None,
    progress: bool = True,
    test_data: PatchSet | None = None,
) -> TrainResult:
    """Train on ``data`` with a grouped train/val/test split; write the artefacts to ``out_dir``.

    With ``test_data`` (for example acquisitions with seeds never used in training)
    that is the test split, and ``data`` is split into train and val only.
    Raises ``ValueError`` when the groups cannot fill all three splits, and
    :class:`ResumeError` when ``resume`` finds no checkpoint or one made with other
    settings (``epochs``, ``patience`` and ``workers`` may change on resume).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data, split_idx = _split(data, config, test_data)
    for name, idx in split_idx.items():
        if idx.size == 0:
            raise ValueError(
                f"the {name} split is empty: {len(set(data.groups))} group(s) cannot fill "
                f"train, val and test (add images, positions or acquisitions)"
            )
    split_groups = {name: sorted({data.groups[i] for i in idx}) for name, idx in split_idx.items()}
    norm = Normalisation.fit(data.images[split_idx["train"]])
    images = norm.apply(data.images)
    labels = data.labels
    k = len(data.classes)
    weights = class_weights(labels[split_idx["train"]], k)

    torch.manual_seed(config.seed)
    model = model_factory(config.arch, in_channels=data.in_channels, num_classes=k)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(weights))
    fingerprint = _fingerprint(config, data, split_groups)

    start_epoch = 0
    record = EpochRecord(best_state=state_copy(model))
    checkpoint_path = out_dir / CHECKPOINT_FILE
    if resume:
        if not checkpoint_path.is_file():
            raise ResumeError(f"{checkpoint_path}: no checkpoint to resume from")
        ckpt = _read_checkpoint(checkpoint_path)
        if ckpt["fingerprint"] != fingerprint:
            raise ResumeError(
                f"{checkpoint_path}: made with other data, split or settings; "
                "start again without --resume or use another output folder"
            )
        model.load_state_dict(ckpt["model"])
        optimiser.load_state_dict(ckpt["optimizer"])
        start_epoch = int(ckpt["epoch"]) + 1
        record = EpochRecord(
            best_state=ckpt["best_model"],
            best_score=float(ckpt["best_score"]),
            best_epoch=int(ckpt["best_epoch"]),
            stale=int(ckpt["stale"]),
            history=list(ckpt["history"]),
        )

    train_set = _Patches(
        images[split_idx["train"]], labels[split_idx["train"]], config.augment, config.seed
    )
    val_images, val_labels = images[split_idx["val"]], labels[split_idx["val"]]
    stopped_early = record.stale >= config.patience
    epoch = start_epoch
    while epoch < config.epochs and not stopped_early:
        train_set.epoch = epoch
        loader = DataLoader(
            train_set,
            batch_size=config.batch_size,
            shuffle=True,
            num_workers=config.workers,
            generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch),
        )
        for group in optimiser.param_groups:
            group["lr"] = cosine_lr(config.lr, epoch, config.epochs)
        model.train()
        total, seen = 0.0, 0
        bar = tqdm(
            loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False
        )
        for x, y in bar:
            optimiser.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(y)
            seen += len(y)
            bar.set_postfix(loss=f"{total / seen:.4f}")
        val = classification_metrics(val_labels, predict_proba(model, val_images), data.classes)
        score = float(val["balanced_accuracy"])
        record.add_epoch(model, epoch, total / max(seen, 1), score, say=progress)
        stopped_early = record.stale >= config.patience
        save_atomic(
            {
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimiser.state_dict(),
                "best_model": record.best_state,
                "best_score": record.best_score,
                "best_epoch": record.best_epoch,
                "stale": record.stale,
                "history": record.history,
                "fingerprint": fingerprint,
            },
            checkpoint_path,
        )
        epoch += 1

    model.load_state_dict(record.best_state)
    model.eval()
    save_atomic(record.best_state, out_dir / MODEL_FILE)
    metrics = {
        name: classification_metrics(labels[idx], predict_proba(model, images[idx]), data.classes)
        for name, idx in split_idx.items()
    }
    save_confusion_png(
        metrics["test"]["confusion_matrix"],
        data.classes,
        out_dir / CONFUSION_FILE,
        title=f"held-out test ({metrics['test']['n']} patches), "
        f"balanced accuracy {metrics['test']['balanced_accuracy']:.3f}",
    )
    files = {"model": MODEL_FILE, "checkpoint": CHECKPOINT_FILE, "confusion_test": CONFUSION_FILE}
    if onnx:
        from livecell.engine.export import export_onnx

        export_onnx(
            model, out_dir / ONNX_FILE, in_channels=data.in_channels, input_size=data.patch_size
        )
        files["onnx"] = ONNX_FILE
    card = model_card(
        data=data,
        config=config,
        norm=norm,
        weights=weights,
        split_idx=split_idx,
        split_groups=split_groups,
        metrics=metrics,
        history=record.history,
        best_epoch=record.best_epoch,
        stopped_early=stopped_early,
        files=files,
        argv=argv,
        provenance=provenance or {},
    )
    write_card(card, out_dir)
    return TrainResult(out_dir=out_dir, model=model, card=card)


def _split(
    data: PatchSet, config: TrainConfig, test_data: PatchSet | None
) -> tuple[PatchSet, dict[str, npt.NDArray[np.int64]]]:
    """The data to train on with its train/val/test indices, grouped."""
    if test_data is None:
        parts = grouped_split(
            data.groups, labels=data.labels.tolist(), fractions=config.fractions, seed=config.seed
        )
        return data, dict(zip(SPLITS, parts, strict=True))
    shared = set(data.groups) & set(test_data.groups)
    if shared:
        raise ValueError(
            f"the test data shares groups with the training data: {sorted(shared)} (groups "
            "are named by acquisition folder and position: two folders of one name count as "
            "one acquisition, so rename one if they differ)"
        )
    train_idx, val_idx, _ = grouped_split(
        data.groups,
        labels=data.labels.tolist(),
        fractions=(config.fractions[0], config.fractions[1], 0.0),
        seed=config.seed,
    )
    test_idx = np.arange(len(data.labels), len(data.labels) + len(test_data.labels))
    return concatenate([data, test_data]), {"train": train_idx, "val": val_idx, "test": test_idx}


def model_card(
    *,
    data: PatchSet,
    config: TrainConfig,
    norm: Normalisation,
    weights: npt.NDArray[np.float32],
    split_idx: Mapping[str, npt.NDArray[np.int64]],
    split_groups: Mapping[str, list[str]],
    metrics: Mapping[str, Any],
    history: Sequence[Mapping[str, float]],
    best_epoch: int,
    stopped_early: bool,
    files: Mapping[str, str],
    argv: Sequence[str],
    provenance: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON model card: what the model takes, how it was made, how well it does."""
    import shlex

    height, width = data.patch_size
    return {
        **card_header(PATCH_TASK),
        "classes": list(data.classes),
        "arch": config.arch,
        "input": {
            "channels": data.in_channels,
            "height": height,
            "width": width,
            "layout": "NCHW",
            "dtype": "float32",
            "normalisation": norm.to_dict(),
            "note": "normalise per channel, (x - mean) / std, before the model; "
            "model.pt gives logits, model.onnx softmax probabilities",
        },
        "training": {
            "epochs": config.epochs,
            "epochs_run": len(history),
            "best_epoch": best_epoch + 1,
            "stopped_early": stopped_early,
            "patience": config.patience,
            "early_stopping_metric": "val balanced_accuracy",
            "batch_size": config.batch_size,
            "optimizer": "AdamW",
            "lr": config.lr,
            "lr_schedule": f"cosine annealing over {config.epochs} epochs",
            "weight_decay": config.weight_decay,
            "loss": "cross-entropy, inverse-frequency class weights",
            "class_weights": {c: float(w) for c, w in zip(data.classes, weights, strict=True)},
            "augment": None if config.augment is None else asdict(config.augment),
            "seed": config.seed,
            "history": [dict(h) for h in history],
        },
        "data": {
            "kind": data.kind,
            "sources": list(data.sources),
            **dict(provenance),
            "split": {
                "grouped_by": "source image" if data.kind == "folders" else "acquisition/position",
                "fractions": list(config.fractions),
                "seed": config.seed,
            },
            "class_counts": data.class_counts(),
            "splits": {
                name: {
                    "n": int(idx.size),
                    "class_counts": {
                        c: int(n)
                        for c, n in zip(
                            data.classes,
                            np.bincount(data.labels[idx], minlength=len(data.classes)),
                            strict=True,
                        )
                    },
                    "groups": split_groups[name],
                }
                for name, idx in split_idx.items()
            },
        },
        "metrics": dict(metrics),
        "files": dict(files),
        "command": shlex.join(argv),
        "argv": list(argv),
    }


def load_model(
    out_dir: Path, *, model_factory: ModelFactory = registry_model
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained model (eval mode) and its card, from ``model.pt`` (``weights_only=True``)."""
    out_dir = Path(out_dir)
    card: dict[str, Any] = json.loads((out_dir / CARD_FILE).read_text())
    model = model_factory(
        card["arch"], in_channels=card["input"]["channels"], num_classes=len(card["classes"])
    )
    model.load_state_dict(torch.load(out_dir / MODEL_FILE, weights_only=True))
    model.eval()
    return model, card


def load_patch_model(out_dir: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """:func:`load_model` for the commands that take a patch classifier's folder
    (``export``, ``explain``): ``ValueError``, in words, for a folder that holds none."""
    card_path = Path(out_dir) / CARD_FILE
    try:
        card = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{card_path} is not a readable model card: {exc}") from None
    task = card_task(card)
    if task != PATCH_TASK:
        raise ValueError(
            f"{out_dir} holds a {task!r} model, not a {PATCH_TASK!r} one (livecell train "
            "--task patches); the nanowell models are exported to ONNX by livecell train"
        )
    try:
        return load_model(out_dir)
    except Exception as exc:  # a torn or foreign model.pt: torch raises many kinds
        raise ValueError(
            f"cannot load {Path(out_dir) / MODEL_FILE}: {type(exc).__name__}: {exc}"
        ) from None


def card_normalisation(card: Mapping[str, Any]) -> Normalisation:
    stats = card["input"]["normalisation"]
    return Normalisation(tuple(stats["mean"]), tuple(stats["std"]))
