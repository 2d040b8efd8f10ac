"""Which model folders a config names, and whether each holds a model its key can use.

Read from the model cards and files only (no model is loaded), so ``livecell check-config``
refuses what the daemon would: a folder without a card, a card of another task than
its key needs, an ONNX file missing.
"""

import json
from pathlib import Path

from livecell.config import NANOWELL_MODEL_KEYS, Config
from livecell.engine.bundled import CARD_FILE, PATCH_TASK, card_task
from livecell.errors import ConfigError

MODEL_TASKS = {
    "patches.model": PATCH_TASK,
    "engine.model": PATCH_TASK,
    "nanowell.segmentation_model": "nanowell segmentation",
    "nanowell.cell_type_model": "sequence cell_type",
    "nanowell.death_model": "sequence death",
    "nanowell.contact_model": "nanowell contact",
}
"""The model card ``task`` each model key needs (``livecell train --task``)."""


def unused_model_keys(config: Config) -> list[str]:
    """Notes on model keys the mode does not read (set, but without effect)."""
    if config.engine.model and config.analysis.mode != "patches":
        return [
            f"engine.model is read in patches mode only; mode {config.analysis.mode!r} does not "
            "use it (nanowell mode's models are nanowell.segmentation_model, cell_type_model, "
            "death_model and contact_model)"
        ]
    return []


def check_model_folders(config: Config) -> None:
    """``ConfigError`` naming the key of a configured model folder without a readable
    model card, or whose card is of another task than the key needs."""
    for key, folder in configured_models(config):
        card_path = folder / CARD_FILE
        if not card_path.is_file():
            raise ConfigError(
                key, f"{folder} is no model folder (no {CARD_FILE}: livecell train --out)"
            )
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(key, f"{card_path} is not a readable model card: {exc}") from None
        task = card_task(card)
        if task != MODEL_TASKS[key]:
            raise ConfigError(
                key, f"{folder} holds a {task!r} model; this key needs a {MODEL_TASKS[key]!r} one"
            )
        reads_onnx = not (task == PATCH_TASK and config.engine.backend == "torch")
        if reads_onnx and not (folder / "model.onnx").is_file():
            remedy = (
                f"trained without --onnx? `livecell export {folder}` writes it"
                if task == PATCH_TASK
                else "livecell train writes it with the model: train it again"
            )
            raise ConfigError(key, f"{folder} has no model.onnx ({remedy})")


def configured_models(config: Config) -> list[tuple[str, Path]]:
    """``(key, folder)`` of each model folder the config names for its mode (empty keys
    are the bundled models)."""
    if config.analysis.mode == "nanowell":
        named = [(k, getattr(config.nanowell, k)) for k in NANOWELL_MODEL_KEYS]
        return [(f"nanowell.{k}", folder) for k, folder in named if folder is not None]
    if config.analysis.mode == "patches":
        if config.patches.model is not None:
            return [("patches.model", config.patches.model)]
        if config.engine.model:
            return [("engine.model", Path(config.engine.model))]
    return []
