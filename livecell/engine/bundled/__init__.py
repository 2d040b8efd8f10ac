"""The models that ship with livecell, trained by livecell's own code on simulated acquisitions.

Each lives in a folder of this package: ``model.onnx`` (what the daemon runs),
``model.pt`` (torch weights, for Grad-CAM and the export parity check) and
``model_card.json`` (classes, input, normalisation, metrics on seeds never trained on,
and the exact command that made it). ``scripts/train_bundled.sh`` makes them again.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BUNDLED_MODELS = {
    "holotomo_states": "patch states in holotomography MIPs (live_control, live_treated, "
    "apoptosis, necroptosis, necrosis)",
    "nanowell_cell_type": "cell type of a nanowell track (CNN-LSTM over crops and motion)",
    "nanowell_death": "death and its pathway for a nanowell track (CNN-LSTM)",
    "nanowell_segmentation": "cell instances in a nanowell crop (U-Net: background, "
    "interior, boundary per pixel, then seeded watershed)",
    "nanowell_contact": "whether two neighbouring cells of a well touch (a small CNN on a "
    "patch around the point where they come closest)",
}
"""Every name a bundled model may have, with what it does."""

CARD_FILE = "model_card.json"

PATCH_TASK = "patch classification"
"""The card's ``task`` of a patch classifier (``livecell train``'s default task)."""


def card_task(card: object) -> str | None:
    """A model card's ``task``: a card without one is a patch classifier's (the first
    cards had none); None for what is no card."""
    if not isinstance(card, dict):
        return None
    task = card.get("task", PATCH_TASK)
    return task if isinstance(task, str) else None


def bundled_model_dir(name: str) -> Path:
    """The folder of bundled model ``name``; ``LookupError`` naming the ones that ship."""
    if name not in BUNDLED_MODELS:
        raise LookupError(f"no bundled model {name!r}; known: {', '.join(BUNDLED_MODELS)}")
    folder = Path(str(resources.files(__name__) / name))
    if not (folder / CARD_FILE).is_file():
        raise LookupError(
            f"the bundled model {name!r} is not in this installation ({folder}); "
            f"shipped: {', '.join(shipped_models()) or 'none'}"
        )
    return folder


def shipped_models() -> list[str]:
    """Names of the bundled models present in this installation."""
    root = Path(str(resources.files(__name__)))
    return [name for name in BUNDLED_MODELS if (root / name / CARD_FILE).is_file()]
