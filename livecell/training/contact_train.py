"""Train the contact net on simulated acquisitions, choose its epoch, export it and check it.

The examples are what the daemon will see: every frame of each ``livecell simulate``
folder goes through the well lattice and the bundled U-Net as in the nanowell stage;
every pair of cells at most ``max_gap_px`` apart (``candidate_pairs``) gives one patch
(``pair_patches``) and one answer, whether the two simulated cells the labels cover
most were in contact in that frame (``ground_truth/contacts.csv``). A label over no
simulated cell, or two labels over one cell, teach nothing and are left out. That U-Net
pass is most of a run's time (about 2 minutes per 72-frame acquisition on 2 cores), so
``cached_contact_examples`` can keep each acquisition's examples in a cache folder.

Training: binary cross-entropy, AdamW, random 90-degree turns and flips, and the two
cells' mask channels swapped at random (a pair has no order). The epoch is chosen on
the validation acquisitions the way ``livecell evaluate`` scores contacts: each pair's
called frames merged into intervals (one frame apart is one contact), matched one to
one to the truth's at an IoU of at least 0.5, with perfect identities; the epoch with
the best lower of precision and recall wins. The held-out acquisitions are only
measured, beside the logistic :data:`BUNDLED_CONTACT_MODEL` on the same pairs. Writes
``model.pt`` (state dict), ``model.onnx`` (``[N, 4, S, S]`` -> p(touching) ``[N, 1]``)
and ``model_card.json`` into ``out``.
"""

from __future__ import annotations

import csv
import time
import zipfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tifffile
import torch
from torch import nn

from livecell.analysis.wells import WellLattice
from livecell.config import NanowellConfig
from livecell.engine.export import backend_parity, export_onnx, require_parity
from livecell.engine.models.contact import ContactCNN
from livecell.engine.tensorrt_build import file_sha256
from livecell.evaluation.contacts import score_contacts, truth_intervals
from livecell.evaluation.tables import TruthContact
from livecell.segmentation.unet import UNetSegmenter, instances_from_probabilities, normalise_crop
from livecell.tracking.contact_score import (
    BUNDLED_CONTACT_MODEL,
    IMAGE_CLIP,
    IMAGE_SCALE,
    PATCH_CHANNELS,
    candidate_pairs,
    pair_patches,
)
from livecell.training.train import card_header, save_atomic, state_copy, write_card

__all__ = [
    "ContactExamples",
    "ContactTrainConfig",
    "cached_contact_examples",
    "contact_examples",
    "train_contact_net",
]

# the ContactExamples fields a cache file holds (``truth`` is read again from the folder)
_CACHED = ("patches", "measurements", "touching", "positions", "wells", "t", "track_a", "track_b")


@dataclass(frozen=True)
class ContactExamples:
    """Every candidate pair of one acquisition's frames, and the acquisition's truth.

    Per pair ``i``: ``patches[i]`` (float16, :data:`PATCH_CHANNELS`), ``measurements[i]``
    (the logistic model's four), ``touching[i]``, and where it was: ``positions[i]``,
    ``wells[i]``, ``t[i]`` and the simulated tracks ``track_a[i] < track_b[i]``.
    ``truth``: every row of ``contacts.csv`` (also the pairs no label pair stood for).
    """

    acquisition: str
    patches: npt.NDArray[np.float16]
    measurements: npt.NDArray[np.float64]
    touching: npt.NDArray[np.bool_]
    positions: npt.NDArray[np.str_]
    wells: npt.NDArray[np.str_]
    t: npt.NDArray[np.int64]
    track_a: npt.NDArray[np.int64]
    track_b: npt.NDArray[np.int64]
    truth: tuple[TruthContact, ...]

    def __len__(self) -> int:
        return len(self.touching)


def read_truth_contacts(acquisition: Path) -> tuple[TruthContact, ...]:
    with open(acquisition / "ground_truth" / "contacts.csv", newline="") as f:
        return tuple(
            TruthContact(
                position=row["position"],
                well=row["well"],
                track_a=min(int(row["track_a"]), int(row["track_b"])),
                track_b=max(int(row["track_a"]), int(row["track_b"])),
                start_t=int(row["start_t"]),
                end_t=int(row["end_t"]),
            )
            for row in csv.DictReader(f)
        )


def _covering_track(truth_labels: npt.NDArray[np.integer], mask: npt.NDArray[np.bool_]) -> int:
    """The simulated track that covers most of ``mask`` (-1: none)."""
    values, counts = np.unique(truth_labels[mask], return_counts=True)
    counts = np.where(values == 0, 0, counts)
    return int(values[np.argmax(counts)]) if counts.max(initial=0) > 0 else -1


def contact_examples(
    acquisition: Path, segmenter: UNetSegmenter, *, half_px: int, progress: bool = False
) -> ContactExamples:
    """The candidate pairs of every frame of ``acquisition`` (see the module docstring)."""
    truth = read_truth_contacts(acquisition)
    in_contact: dict[tuple[str, str, int], set[tuple[int, int]]] = defaultdict(set)
    for c in truth:
        for t in range(c.start_t, c.end_t + 1):
            in_contact[(c.position, c.well, t)].add((c.track_a, c.track_b))
    columns: dict[str, list[Any]] = defaultdict(list)
    patches: list[npt.NDArray[np.float16]] = []
    positions = sorted(p for p in (acquisition / "frames").iterdir() if p.is_dir())
    if not positions:
        raise ValueError(f"{acquisition}: no frames/<position>/ folders")
    for folder in positions:
        lattice = WellLattice(edge_margin_px=NanowellConfig().well_edge_margin_px)
        for path in sorted(folder.glob("t*.ome.tif")):
            t = int(path.name[1:6])
            image = tifffile.imread(path).astype(np.float32)
            truth_labels = tifffile.imread(
                acquisition / "ground_truth" / folder.name / "TRA" / f"man_track{t:03d}.tif"
            )
            wells = lattice.update(image, t)
            crops = [image[w.y0 : w.y1, w.x0 : w.x1] for w in wells]
            for well, crop, p in zip(wells, crops, segmenter.probabilities(crops), strict=True):
                labels = instances_from_probabilities(p[1], p[2], segmenter.params)
                foreground = p[1] + p[2]
                found = candidate_pairs(labels, foreground)
                cut = pair_patches(normalise_crop(crop), labels, foreground, found, half_px)
                cover = truth_labels[well.y0 : well.y1, well.x0 : well.x1]
                for i, (a, b) in enumerate(found.pairs.tolist()):
                    ta, tb = sorted(_covering_track(cover, labels == v) for v in (a, b))
                    if ta < 0 or ta == tb:
                        continue
                    patches.append(cut[i].astype(np.float16))
                    columns["measurements"].append(found.measurements[i])
                    columns["touching"].append((ta, tb) in in_contact[(folder.name, well.well, t)])
                    columns["positions"].append(folder.name)
                    columns["wells"].append(well.well)
                    columns["t"].append(t)
                    columns["track_a"].append(ta)
                    columns["track_b"].append(tb)
        if progress:
            print(f"{acquisition.name}/{folder.name}: {len(patches)} pairs", flush=True)
    side = 2 * half_px
    return ContactExamples(
        acquisition=acquisition.name,
        patches=np.asarray(patches, np.float16).reshape(-1, len(PATCH_CHANNELS), side, side),
        measurements=np.asarray(columns["measurements"], np.float64).reshape(-1, 4),
        touching=np.asarray(columns["touching"], bool),
        positions=np.asarray(columns["positions"], str),
        wells=np.asarray(columns["wells"], str),
        t=np.asarray(columns["t"], np.int64),
        track_a=np.asarray(columns["track_a"], np.int64),
        track_b=np.asarray(columns["track_b"], np.int64),
        truth=truth,
    )


def cached_contact_examples(
    acquisition: Path,
    segmenter: UNetSegmenter,
    *,
    half_px: int,
    cache: Path | None,
    progress: bool = False,
) -> ContactExamples:
    """:func:`contact_examples`, kept in ``cache/<folder name>.npz`` when ``cache`` is set.

    A cache file is used only while it was made from the same folder, the same
    ``contacts.csv``, the same U-Net ONNX file and watershed settings and the same
    ``half_px``; otherwise the examples are made again and the file replaced. The key
    does not cover livecell's own code: empty the cache after changing how pairs are found.
    """
    if cache is None:
        return contact_examples(acquisition, segmenter, half_px=half_px, progress=progress)
    key = ":".join(
        [
            str(acquisition.resolve()),
            file_sha256(acquisition / "ground_truth" / "contacts.csv"),
            file_sha256(segmenter.model_path),
            repr(segmenter.params),
            str(half_px),
        ]
    )
    path = cache / f"{acquisition.resolve().name}.npz"
    saved = _read_cache(path, key)
    if saved is not None:
        if progress:
            print(f"{acquisition.name}: {len(saved['touching'])} pairs from {path}")
        return ContactExamples(
            acquisition=acquisition.name, truth=read_truth_contacts(acquisition), **saved
        )
    examples = contact_examples(acquisition, segmenter, half_px=half_px, progress=progress)
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez_compressed(
        partial, key=np.array(key), **{name: getattr(examples, name) for name in _CACHED}
    )
    partial.replace(path)
    return examples


def _read_cache(path: Path, key: str) -> dict[str, Any] | None:
    """The cached fields in ``path`` if it holds ``key``; None if missing, stale or unreadable."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            if str(saved["key"]) != key:
                return None
            return {name: saved[name] for name in _CACHED}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        print(f"{path}: unreadable cache file ({exc}); making the examples again")
        return None


def interval_scores(
    examples: Sequence[ContactExamples], called: Sequence[npt.NDArray[np.bool_]]
) -> dict[str, float]:
    """Precision and recall of the contacts ``called`` (one flag per pair) as
    ``livecell evaluate`` scores them, with perfect identities, pooled over acquisitions."""
    matched = predicted = truth = 0
    for ex, flags in zip(examples, called, strict=True):
        rows = [
            TruthContact(ex.positions[i], ex.wells[i], int(ex.track_a[i]), int(ex.track_b[i]), t, t)
            for i, t in zip(np.flatnonzero(flags), ex.t[flags].tolist(), strict=True)
        ]
        report = score_contacts(truth_intervals(ex.truth), truth_intervals(rows))
        matched += report.matched
        predicted += report.predicted
        truth += report.truth
    return {
        "precision": matched / max(predicted, 1),
        "recall": matched / max(truth, 1),
        "contacts": float(truth),
    }


@dataclass(frozen=True, slots=True)
class ContactTrainConfig:
    """How the contact net is trained."""

    epochs: int = 12
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    width: int = 24
    patch_px: int = 32
    threshold: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patch_px % 4 or self.patch_px < 8:
            raise ValueError("epochs and batch_size >= 1; patch_px a multiple of 4, >= 8")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold must lie in (0, 1)")


def _augmented(patches: npt.NDArray[np.float16], rng: np.random.Generator) -> torch.Tensor:
    """A batch turned by a random multiple of 90 degrees, maybe flipped, masks maybe swapped."""
    x = np.rot90(patches.astype(np.float32), int(rng.integers(4)), axes=(2, 3))
    if rng.random() < 0.5:
        x = x[:, :, :, ::-1]
    if rng.random() < 0.5:
        x = x[:, [0, 2, 1, 3]]
    return torch.from_numpy(np.ascontiguousarray(x))


def _probabilities(model: nn.Module, patches: npt.NDArray[np.float16]) -> npt.NDArray[np.float32]:
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(patches), 512):
            x = torch.from_numpy(patches[start : start + 512].astype(np.float32))
            out.append(torch.sigmoid(model(x))[:, 0].numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _wrap(model: nn.Module) -> nn.Module:
    wrapped = nn.Sequential(model, nn.Sigmoid())
    wrapped.eval()
    return wrapped


def export_contact_onnx(model: nn.Module, path: Path, patch_px: int) -> Path:
    """``model`` + sigmoid as ONNX: ``patches [N, 4, S, S]`` -> ``probabilities [N, 1]``."""
    return export_onnx(
        model, path, in_channels=len(PATCH_CHANNELS), input_size=patch_px, wrap=_wrap
    )


def onnx_parity(model: nn.Module, onnx_path: Path, patch_px: int, seed: int = 0) -> float:
    """Largest |ONNX Runtime - torch| over a random batch of five patches."""
    shape = (5, len(PATCH_CHANNELS), patch_px, patch_px)
    x = np.random.default_rng(seed).normal(0.0, 1.0, shape).astype(np.float32)
    return backend_parity(_wrap(model), onnx_path, x, max_batch=8)


def _scores(
    model: nn.Module, examples: Sequence[ContactExamples], threshold: float
) -> dict[str, Any]:
    """The net's and the logistic model's interval scores on ``examples`` (``n``: pairs)."""
    net = [_probabilities(model, ex.patches) >= threshold for ex in examples]
    logistic = [
        BUNDLED_CONTACT_MODEL.probability(ex.measurements) >= BUNDLED_CONTACT_MODEL.threshold
        for ex in examples
    ]
    return {
        "n": sum(len(ex) for ex in examples),
        "net": interval_scores(examples, net),
        "logistic": interval_scores(examples, logistic),
    }


def train_contact_net(
    train: Sequence[ContactExamples],
    val: Sequence[ContactExamples],
    test: Sequence[ContactExamples],
    out: Path,
    config: ContactTrainConfig = ContactTrainConfig(),
    *,
    argv: Sequence[str] = (),
    provenance: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train, choose the epoch on ``val``, measure ``test``, export; returns the card."""
    patches = np.concatenate([ex.patches for ex in train])
    touching = np.concatenate([ex.touching for ex in train]).astype(np.float32)
    if len(touching) == 0 or touching.min() == touching.max():
        raise ValueError("the training acquisitions need pairs both touching and apart")
    if not val:
        raise ValueError("no validation acquisitions")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = ContactCNN(width=config.width)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    loss_fn = nn.BCEWithLogitsLoss()
    started = time.perf_counter()
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    history = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = rng.permutation(len(touching))
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            logits = model(_augmented(patches[batch], rng))[:, 0]
            loss = loss_fn(logits, torch.from_numpy(touching[batch]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        called = [_probabilities(model, ex.patches) >= config.threshold for ex in val]
        score = interval_scores(val, called)
        worse = min(score["precision"], score["recall"])
        history.append({"epoch": epoch, "loss": total / len(order), **score})
        if progress:
            print(
                f"epoch {epoch}/{config.epochs} loss {total / len(order):.4f} validation "
                f"precision {score['precision']:.3f} recall {score['recall']:.3f} "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
        if best is None or worse > best[0]:
            best = (worse, epoch, state_copy(model))
    assert best is not None
    model.load_state_dict(best[2])
    model.eval()
    train_s = time.perf_counter() - started
    save_atomic(model.state_dict(), out / "model.pt")
    onnx_path = export_contact_onnx(model, out / "model.onnx", config.patch_px)
    parity = onnx_parity(model, onnx_path, config.patch_px)
    require_parity(parity)
    card: dict[str, Any] = {
        **card_header("nanowell contact"),
        "classes": ["touching"],
        "threshold": config.threshold,
        "model": {
            "builder": "livecell.engine.models.contact.ContactCNN",
            "in_channels": len(PATCH_CHANNELS),
            "width": config.width,
            "weights": sum(p.numel() for p in model.parameters()),
        },
        "input": {
            "layout": "NCHW",
            "dtype": "float32",
            "patch_px": config.patch_px,
            "channels": list(PATCH_CHANNELS),
            "near_px": BUNDLED_CONTACT_MODEL.near_px,
            "max_gap_px": BUNDLED_CONTACT_MODEL.max_gap_px,
            "normalisation": f"image: U-Net crop normalisation, clipped to {list(IMAGE_CLIP)}, "
            f"divided by {IMAGE_SCALE}; masks 0/1; foreground p(cell)",
            "note": "livecell.tracking.contact_score.pair_patches cuts the patches; "
            "model.onnx gives p(touching) [N, 1]",
        },
        "training": {
            **asdict(config),
            "train_pairs": len(touching),
            "train_touching": int(touching.sum()),
            "chosen_epoch": best[1],
            "history": history,
            "train_s": round(train_s, 1),
            "train": [ex.acquisition for ex in train],
            "val": [ex.acquisition for ex in val],
            "test": [ex.acquisition for ex in test],
            **(provenance or {}),
        },
        "metrics": {
            "val": _scores(model, val, config.threshold),
            "test": _scores(model, test, config.threshold) if test else None,
            "onnx_parity_max_abs_diff": parity,
        },
        "command": " ".join(argv),
    }
    write_card(card, out)
    return card
