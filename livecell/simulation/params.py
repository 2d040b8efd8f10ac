"""Simulator parameters from a TOML file plus command-line overrides, strictly checked.

Each simulator's parameters are a frozen dataclass; a parameter file holds any
subset of its fields. Unknown names and wrong types are errors naming the key.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from livecell.errors import ConfigError

P = TypeVar("P")


def load_params(cls: type[P], path: Path | None, overrides: dict[str, Any]) -> P:
    """``cls`` with the file's values, then ``overrides`` (``None`` values ignored)."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("--params", f"parameter file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--params", f"{path} is not valid TOML: {exc}") from None
    values.update({k: v for k, v in overrides.items() if v is not None})
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(key, f"unknown parameter; known: {', '.join(sorted(known))}")
        checked[key] = _coerce(key, value, hints[key])
    try:
        return cls(**checked)
    except (TypeError, ValueError) as exc:
        raise ConfigError("--params" if path else "simulation parameters", str(exc)) from None


def describe(params: object) -> str:
    """Every parameter and its value, one per line, as a parameter file would hold them."""
    if not dataclasses.is_dataclass(params) or isinstance(params, type):
        raise TypeError(f"{params!r} is not a dataclass instance")
    lines = []
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if isinstance(value, tuple):
            value = list(value)
        lines.append(f"{f.name} = {value!r}".replace("True", "true").replace("False", "false"))
    return "\n".join(lines) + "\n"


def param_error(name: str, why: str) -> ValueError:
    """The error a parameters dataclass raises from ``__post_init__``, naming the field."""
    return ValueError(f"{name}: {why}")


def is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


Check = tuple[str, bool, str]  # (field, holds, what it must be)


def nonnegative_checks(params: object, names: tuple[str, ...]) -> list[Check]:
    """A check per field that it is a finite number >= 0."""
    return [
        (name, is_finite_number(v) and v >= 0, "must be a finite number >= 0")
        for name in names
        for v in (getattr(params, name),)
    ]


def raise_failed(checks: list[Check]) -> None:
    """Raise ``param_error`` for the first check that does not hold."""
    for name, holds, why in checks:
        if not holds:
            raise param_error(name, why)


def check_pathway_weights(name: str, weights: tuple[float, ...]) -> None:
    if (
        len(weights) != 3
        or any(not is_finite_number(w) or w < 0 for w in weights)
        or (sum(weights) <= 0)
    ):
        raise param_error(name, "must be three weights >= 0 (apoptosis, necroptosis, necrosis)")


def _coerce(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        if isinstance(value, list | tuple):
            args = typing.get_args(hint)
            inner = args[0]
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_coerce(key, v, inner) for v in value)
            if len(args) == len(value):
                return tuple(_coerce(key, v, a) for v, a in zip(value, args, strict=True))
    elif origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            if option is type(None) and value is None:
                return None
            try:
                return _coerce(key, value, option)
            except ConfigError:
                continue
    else:
        return value
    raise ConfigError(key, f"expected {getattr(hint, '__name__', hint)}, got {value!r}")
