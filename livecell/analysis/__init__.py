"""Analysis stages: what livecell derives from each frame.

A stage (``_protocol.py``) takes frames of a position in order and returns the
events they give rise to, beyond the ``frame`` event the pipeline emits for
every accepted frame. ``mode = "none"`` (``frames_only.py``) adds nothing;
nanowell mode (``nanowell.py``) and patch mode plug in here, behind the same protocol, without
the sources or sinks knowing.
"""

from collections.abc import Callable

import structlog

from livecell.analysis._protocol import Stage, StageMeters, nothing_reported
from livecell.analysis.frames_only import FramesOnly
from livecell.analysis.model_folders import (
    check_model_folders,
    configured_models,
    unused_model_keys,
)
from livecell.config import Config
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
