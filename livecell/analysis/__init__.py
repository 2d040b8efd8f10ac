"""Analysis stages: what livecell derives from each frame.

A stage (``_protocol.py``) takes frames of a position in order and returns the
events they give rise to, beyond the ``frame`` event the pipeline emits for
every accepted frame. ``mode = "none"`` (``frames_only.py``) adds nothing;
nanowell mode (``nanowell.py``) and patch mode plug in here, behind the same protocol, without
the sources or sinks knowing.
"""

from pathlib import Path

from livecell.analysis._protocol import Stage, StageMeters
from livecell.analysis.frames_only import FramesOnly
from livecell.config import NANOWELL_MODEL_KEYS, Config
from livecell.errors import ConfigError

__all__ = ["FramesOnly", "Stage", "StageMeters", "build_stage"]


def build_stage(config: Config, meters: StageMeters) -> Stage:
    """The stage for ``analysis.mode``; raises ``ConfigError`` for one not built yet.

    ``meters`` (the daemon's ``Metrics``) receives sub-stage times and engine item counts.
    """
    for key, folder in configured_models(config):
        if not (folder / "model_card.json").is_file():
            raise ConfigError(
                key, f"{folder} is no model folder (no model_card.json: livecell train --out)"
            )
    mode = config.analysis.mode
    if mode == "none":
        return FramesOnly()
    if mode == "nanowell":
        from livecell.analysis.nanowell import open_nanowell_stage

        return open_nanowell_stage(config, meters)
    from livecell.analysis.patches import open_patch_stage  # mode "patches", as validated

    return open_patch_stage(config, meters)


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
