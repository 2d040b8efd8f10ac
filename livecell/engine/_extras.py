"""Optional heavy dependencies, imported lazily with one clear message naming the extra."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType


class MissingExtra(ImportError):
    """An optional dependency is not installed; ``extra`` names what to install."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the Python package {module!r}, which is not installed: "
            f"pip install 'livecell[{extra}]'"
        )
        self.module = module
        self.extra = extra


def require(module: str, *, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtra` naming ``livecell[extra]``."""
    try:
        return import_module(module)
    except ImportError as exc:
        raise MissingExtra(module, extra, purpose) from exc
