"""Argument types for command lines (bench, train): a bad value is a usage error
(argparse names the option and exits 2), never a traceback from deep in a run."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

__all__ = ["at_least_one", "existing_dir", "non_negative", "non_negative_float", "positive_float"]


def _number(text: str, kind: type[int] | type[float]) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return value


def _bounded(text: str, kind: type[int] | type[float], low: float, *, above: bool) -> float:
    """``text`` as a ``kind``, at least ``low`` (more than ``low`` if ``above``)."""
    value = _number(text, kind)
    if value < low or (above and value == low):
        bound = f"more than {low:g}" if above else f"{low:g} or more"
        raise argparse.ArgumentTypeError(f"must be {bound}, got {value:g}")
    return value


def at_least_one(text: str) -> int:
    """A count: 1 or more."""
    return int(_bounded(text, int, 1, above=False))


def non_negative(text: str) -> int:
    """A seed, or a count where 0 means none (or, for threads, all)."""
    return int(_bounded(text, int, 0, above=False))


def positive_float(text: str) -> float:
    """A time, length or rate: more than 0."""
    return float(_bounded(text, float, 0, above=True))


def non_negative_float(text: str) -> float:
    """A pace, a wait or a weight: 0 or more."""
    return float(_bounded(text, float, 0, above=False))


def existing_dir(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    return path
