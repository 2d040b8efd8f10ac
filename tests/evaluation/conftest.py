"""Floating-point errors raise in the scorer's tests (STYLE habit 11): a NaN must be chosen,
never produced by accident."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _raise_on_float_errors() -> Iterator[None]:
    with np.errstate(all="raise"):
        yield
