"""Analysis stages: what livecell derives from each frame.

A stage (``_protocol.py``) takes frames of a position in order and returns the
events they give rise to, beyond the ``frame`` event the pipeline emits for
every accepted frame. ``mode = "none"`` (``frames_only.py``) adds nothing;
patch mode and nanowell mode plug in here, behind the same protocol, without
the sources or sinks knowing.
"""

from livecell.analysis._protocol import Stage
from livecell.analysis.frames_only import FramesOnly

__all__ = ["FramesOnly", "Stage", "build_stage"]


def build_stage(mode: str) -> Stage:
    """The stage for ``analysis.mode``; raises ``ConfigError`` for one not built yet."""
    from livecell.errors import ConfigError

    if mode == "none":
        return FramesOnly()
    raise ConfigError(
        "analysis.mode", f"{mode!r} is not available in this version of livecell (only 'none')"
    )
