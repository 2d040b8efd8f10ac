"""Inference backends: one interface (:class:`Backend`), several implementations.

``open_backend(name, model_path, ...)`` opens one; see ``_protocol`` for the lifecycle.
"""

from livecell.engine._extras import MissingExtra
from livecell.engine.backends._protocol import Backend
from livecell.engine.backends.select import BACKENDS, choose_auto, open_backend

__all__ = ["BACKENDS", "Backend", "MissingExtra", "choose_auto", "open_backend"]
