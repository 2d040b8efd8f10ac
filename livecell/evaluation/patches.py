"""Patch states: ``patch_states`` events against ``patches.csv``.

Rules:

- A ground-truth patch ``(row, col)`` of the ground-truth grid (160 px patches)
  is scored by the predicted patch that covers its centre in the event's own
  grid (``patch_size``); with the default patch size that is the same
  ``(row, col)``. A ground-truth patch outside the event's grid counts as skipped.
- Each ground-truth frame ``(position, t)`` is scored by the ``patch_states``
  event of that frame (the last one, should there be several). Frames without
  an event are not scored; how many there were is reported.
- A skipped patch (-1) is the model's call "no cell here", written ``empty``
  in the confusion matrix, whose rows are the truth and columns the prediction,
  over the five states, any other class name the model used, and ``empty``.
- Accuracy and balanced accuracy are over patches the truth says hold a cell
  (not ``empty``): a cell patch the model skipped is an error. Balanced
  accuracy is the mean recall over the states present in the truth.
- Per-class precision counts every patch predicted as that class, also on
  empty ground truth (a call on an empty patch is a false positive); recall is
  over the class's ground-truth patches. Macro F1 is the mean F1 over classes
  present in the truth or the prediction. ``empty`` is reported apart:
  empty patches, how many were skipped, how many got a state, and cell
  patches skipped.
- AUROC (one class against the rest, per class, and their mean) when events
  carry ``probabilities``: over cell patches the model did not skip, for each
  state with both positive and negative patches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from livecell.evaluation.errors import require
from livecell.evaluation.stats import ratio
from livecell.evaluation.tables import PatchStatesEvent, PatchTable
from livecell.simulation.scene import DEFAULT_PATCH_SIZE_PX, EMPTY_PATCH, PATCH_STATES


@dataclass(frozen=True, slots=True)
class ClassScores:
    name: str
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int
    auroc: float | None


@dataclass(frozen=True, slots=True)
class FrameCounts:
    """Patches per label (``PatchReport.labels``) in one frame: truth and prediction."""

    position: str
    t: int
    truth: tuple[int, ...]
    predicted: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PatchReport:
    labels: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]
    cell_patches: int
    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    macro_auroc: float | None
    auroc_patches: int
    per_class: tuple[ClassScores, ...]
    empty_patches: int
    empty_skipped: int
    empty_called: int
    cells_skipped: int
    frames_scored: int
    frames_without_event: int
    timeline: tuple[FrameCounts, ...]


@dataclass(frozen=True, slots=True)
class PatchCalls:
    """Ground-truth and predicted label of every scored patch, aligned, with optional scores."""

    position: tuple[str, ...]
    t: np.ndarray
    truth: tuple[str, ...]
    predicted: tuple[str, ...]
    scores: np.ndarray  # n x len(PATCH_STATES); nan where the event had no probabilities
    frames_scored: int
    frames_without_event: int


def align_patches(
    truth: PatchTable,
    events: Sequence[PatchStatesEvent],
    *,
    truth_patch_size: int = DEFAULT_PATCH_SIZE_PX,
) -> PatchCalls:
    """Pair each ground-truth patch with the predicted label (and scores) covering its centre."""
    by_frame = {(e.position, e.t): e for e in events}
    positions: list[str] = []
    ts: list[int] = []
    true_labels: list[str] = []
    predicted: list[str] = []
    scores: list[np.ndarray] = []
    missing: set[tuple[str, int]] = set()
    scored: set[tuple[str, int]] = set()
    nan_scores = np.full(len(PATCH_STATES), np.nan)
    for p, t, row, col, state in zip(
        truth.position.tolist(),
        truth.t.tolist(),
        truth.row.tolist(),
        truth.col.tolist(),
        truth.state.tolist(),
        strict=True,
    ):
        event = by_frame.get((p, t))
        if event is None:
            missing.add((p, t))
            continue
        scored.add((p, t))
        rows, cols = event.states.shape
        r = int((row + 0.5) * truth_patch_size // event.patch_size)
        c = int((col + 0.5) * truth_patch_size // event.patch_size)
        index = int(event.states[r, c]) if r < rows and c < cols else -1
        positions.append(p)
        ts.append(t)
        true_labels.append(state)
        predicted.append(EMPTY_PATCH if index < 0 else event.classes[index])
        if index >= 0 and event.probabilities is not None:
            vector = event.probabilities[r, c]
            scores.append(
                np.array(
                    [
                        vector[event.classes.index(s)] if s in event.classes else np.nan
                        for s in PATCH_STATES
                    ]
                )
            )
        else:
            scores.append(nan_scores)
    return PatchCalls(
        position=tuple(positions),
        t=np.array(ts, dtype=np.int64),
        truth=tuple(true_labels),
        predicted=tuple(predicted),
        scores=np.array(scores).reshape(len(scores), len(PATCH_STATES)),
        frames_scored=len(scored),
        frames_without_event=len(missing),
    )


def _f1(precision: float, recall: float) -> float:
    if math.isnan(precision) or math.isnan(recall):
        return float("nan")
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def score_patches(calls: PatchCalls) -> PatchReport:
    metrics = require("sklearn.metrics")

    extra = sorted((set(calls.truth) | set(calls.predicted)) - {*PATCH_STATES, EMPTY_PATCH})
    classes = (*PATCH_STATES, *extra)
    labels = (*classes, EMPTY_PATCH)
    if calls.truth:
        cm = metrics.confusion_matrix(list(calls.truth), list(calls.predicted), labels=list(labels))
    else:
        cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    n_classes = len(classes)
    cell_cm = cm[:n_classes]  # rows whose truth holds a cell
    cell_patches = int(cell_cm.sum())

    truth_arr = np.array(calls.truth, dtype=np.str_)
    kept = (truth_arr != EMPTY_PATCH) & np.array(
        [p != EMPTY_PATCH for p in calls.predicted], dtype=bool
    )
    has_scores = ~np.isnan(calls.scores).all(axis=1) if len(calls.scores) else kept
    auroc_patches = int((kept & has_scores).sum())
    per_class: list[ClassScores] = []
    recalls: list[float] = []
    f1s: list[float] = []
    aurocs: list[float] = []
    for k, name in enumerate(classes):
        support = int(cm[k].sum())
        predicted = int(cm[:, k].sum())
        precision = ratio(cm[k, k], predicted)
        recall = ratio(cm[k, k], support)
        if support or predicted:
            f1 = _f1(precision, recall) if cm[k, k] else 0.0
            f1s.append(f1)
        else:
            f1 = float("nan")
        if support:
            recalls.append(recall)
        auroc: float | None = None
        if k < len(PATCH_STATES) and auroc_patches:
            column = calls.scores[:, k]
            usable = kept & ~np.isnan(column)
            positives = truth_arr[usable] == name
            if 0 < positives.sum() < len(positives):
                auroc = float(metrics.roc_auc_score(positives, column[usable]))
                aurocs.append(auroc)
        per_class.append(ClassScores(name, precision, recall, f1, support, predicted, auroc))
    empty_row = cm[n_classes]
    index = {label: k for k, label in enumerate(labels)}
    per_frame: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
    for p, t, true, predicted_label in zip(
        calls.position, calls.t.tolist(), calls.truth, calls.predicted, strict=True
    ):
        counts = per_frame.setdefault(
            (p, t), (np.zeros(len(labels), np.int64), np.zeros(len(labels), np.int64))
        )
        counts[0][index[true]] += 1
        counts[1][index[predicted_label]] += 1
    timeline = tuple(
        FrameCounts(p, t, tuple(a.tolist()), tuple(b.tolist()))
        for (p, t), (a, b) in sorted(per_frame.items())
    )
    return PatchReport(
        labels=labels,
        confusion=tuple(tuple(int(v) for v in row) for row in cm),
        cell_patches=cell_patches,
        accuracy=ratio(float(np.trace(cell_cm[:, :n_classes])), cell_patches),
        balanced_accuracy=float(np.mean(recalls)) if recalls else float("nan"),
        macro_f1=float(np.mean(f1s)) if f1s else float("nan"),
        macro_auroc=float(np.mean(aurocs)) if aurocs else None,
        auroc_patches=auroc_patches,
        per_class=tuple(per_class),
        empty_patches=int(empty_row.sum()),
        empty_skipped=int(empty_row[n_classes]),
        empty_called=int(empty_row[:n_classes].sum()),
        cells_skipped=int(cell_cm[:, n_classes].sum()),
        frames_scored=calls.frames_scored,
        frames_without_event=calls.frames_without_event,
        timeline=timeline,
    )
