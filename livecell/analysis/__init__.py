"""Analysis stages: what livecell derives from each frame.

A stage (``_protocol.py``) takes frames of a position in order and returns the
events they give rise to, beyond the ``frame`` event the pipeline emits for
every accepted frame. ``mode = "none"`` (``frames_only.py``) adds nothing;
nanowell mode (``nanowell.py``) and patch mode plug in here, behind the same protocol, without
the sources or sinks knowing.
"""

from livecell.analysis._protocol import Stage, StageMeters
from livecell.analysis.frames_only import FramesOnly
from livecell.config import Config

__all__ = ["FramesOnly", "Stage", "StageMeters", "build_stage"]


def build_stage(config: Config, meters: StageMeters) -> Stage:
    """The stage for ``analysis.mode``; raises ``ConfigError`` for one not built yet.

    ``meters`` (the daemon's ``Metrics``) receives sub-stage times and engine item counts.
    """
    from livecell.errors import ConfigError

    mode = config.analysis.mode
    if mode == "none":
        return FramesOnly()
    if mode == "nanowell":
        from livecell.analysis.nanowell import open_nanowell_stage

        return open_nanowell_stage(config, meters)
    if mode == "patches":
        from livecell.analysis.patches import open_patch_stage

        return open_patch_stage(config, meters)
    raise ConfigError("analysis.mode", f"{mode!r} is not one of 'none', 'nanowell' and 'patches'")
