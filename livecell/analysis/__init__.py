"""Analysis stages: what livecell derives from each frame.

A stage (``_protocol.py``) takes frames of a position in order and returns the
events they give rise to, beyond the ``frame`` event the pipeline emits for
every accepted frame. ``mode = "none"`` (``frames_only.py``) adds nothing;
nanowell mode (``nanowell.py``) and patch mode plug in here, behind the same protocol, without
the sources or sinks knowing.
"""

import json
from collections.abc import Callable
from pathlib import Path

import structlog

from livecell.analysis._protocol import Stage, StageMeters, nothing_reported
from livecell.analysis.frames_only import FramesOnly
from livecell.config import NANOWELL_MODEL_KEYS, Config
from livecell.engine.bundled import CARD_FILE, PATCH_TASK
from livecell.errors import ConfigError

__all__ = [
    "FramesOnly",
    "Stage",
    "StageMeters",
    "build_stage",
    "check_model_folders",
    "unused_model_keys",
]

log = structlog.get_logger("livecell.analysis")


def build_stage(
    config: Config, meters: StageMeters, *, reported: Callable[[str], bool] = nothing_reported
) -> Stage:
    """The stage for ``analysis.mode``; raises ``ConfigError`` for one not built yet.

    ``meters`` (the daemon's ``Metrics``) receives sub-stage times and engine item counts;
    ``reported`` (the journal's ``has_event``) tells patch mode which events a run before
    a restart already wrote.
    """
    check_model_folders(config)
    for note in unused_model_keys(config):
        log.warning(note)
    mode = config.analysis.mode
    if mode == "none":
        return FramesOnly()
    from livecell.engine._extras import MissingExtra

    try:
        if mode == "nanowell":
            from livecell.analysis.nanowell import open_nanowell_stage

            return open_nanowell_stage(config, meters)
        from livecell.analysis.patches import open_patch_stage  # mode "patches", as validated

        return open_patch_stage(config, meters, reported=reported)
    except MissingExtra as exc:
        raise ConfigError("engine.backend", str(exc)) from None
    except (KeyError, TypeError, ValueError) as exc:
        named = configured_models(config)
        if not named:
            raise  # a bundled model that does not load is a bug, not a user's error
        detail = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        keys = " / ".join(key for key, _ in named)
        raise ConfigError(keys, f"cannot be used in {mode} mode: {detail}") from None


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
        task = card.get("task", PATCH_TASK) if isinstance(card, dict) else None
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
