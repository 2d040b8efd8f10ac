"""The one error the scorer raises for bad input."""

from __future__ import annotations

import importlib
from types import ModuleType

from livecell.errors import ConfigError


class InputError(ConfigError):
    """An input is missing, unreadable or malformed: exit status 2, no traceback.

    ``key`` names the input (``--events``, ``ground_truth/tracks.csv``) and
    ``message`` says what is wrong with it, with a line number where there is one.
    It is a ``ConfigError`` so the ``livecell`` command line treats it as a usage error.
    """


class MissingExtra(Exception):
    """A scoring library is not installed: the message names the extra that brings it."""

    def __init__(self, module: str) -> None:
        super().__init__(
            f"{module} is not installed; the scorer needs it: pip install 'livecell[eval]'"
        )
        self.module = module


def require(module: str) -> ModuleType:
    """Import an optional scoring dependency, or raise ``MissingExtra`` naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(module) from exc
