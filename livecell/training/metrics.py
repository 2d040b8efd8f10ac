"""Held-out metrics of a classifier and its confusion-matrix figure.

Balanced accuracy is the mean recall over the classes present in the true labels
(sklearn's definition, computed here so that a class predicted but absent from a
small split is not a warning). Macro AUROC is the mean one-vs-rest AUROC over the
classes that have both positives and negatives in the split; ``None`` when no class
does. Matplotlib is used through its object API on the Agg canvas (no pyplot state).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


def balanced_accuracy(y_true: npt.NDArray[np.int64], y_pred: npt.NDArray[np.int64]) -> float:
    """Mean per-class recall over the classes present in ``y_true`` (0.0 for no items)."""
    present = np.unique(y_true)
    if present.size == 0:
        return 0.0
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in present]))


def macro_auroc(y_true: npt.NDArray[np.int64], proba: npt.NDArray[np.floating]) -> float | None:
    """Mean one-vs-rest AUROC over classes with positives and negatives; ``None`` if none."""
    from sklearn.metrics import roc_auc_score

    scores = []
    for c in range(proba.shape[1]):
        positive = y_true == c
        if positive.any() and not positive.all():
            scores.append(float(roc_auc_score(positive, proba[:, c])))
    return float(np.mean(scores)) if scores else None


def classification_metrics(
    y_true: npt.NDArray[np.int64], proba: npt.NDArray[np.floating], classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro AUROC, per-class P/R/F1/support, confusion matrix.

    The confusion matrix is true label (rows) by prediction (columns), in ``classes`` order.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(classes)))
    y_pred = np.argmax(proba, axis=1).astype(np.int64) if len(y_true) else y_true
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    return {
        "n": len(y_true),
        "accuracy": float(np.mean(y_pred == y_true)) if len(y_true) else 0.0,
        "balanced_accuracy": balanced_accuracy(y_true, y_pred),
        "macro_auroc": macro_auroc(y_true, proba) if len(y_true) else None,
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "confusion_matrix": matrix.astype(int).tolist(),
    }


def save_confusion_png(
    matrix: Sequence[Sequence[int]], classes: Sequence[str], path: Path, *, title: str
) -> Path:
    """The confusion matrix (true rows, predicted columns) as a PNG, counts in the cells."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    m = np.asarray(matrix, dtype=np.int64)
    side = max(3.6, 1.2 + 0.7 * len(classes))
    fig = Figure(figsize=(side + 1.5, side), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    row_sums = np.maximum(m.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(m / row_sums, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    ax.set_xticks(range(len(classes)), labels=list(classes), rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), labels=list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize="medium")
    for (r, c), v in np.ndenumerate(m):
        shade = "white" if v / row_sums[r, 0] > 0.5 else "black"
        ax.text(c, r, str(v), ha="center", va="center", color=shade, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    return path
