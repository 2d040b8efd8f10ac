"""Timing one call repeatedly: the samples the benchmark tables summarise."""

from __future__ import annotations

import time
from collections.abc import Callable


def call_seconds(call: Callable[[], object], repeats: int, *, warm_up: bool = False) -> list[float]:
    """Seconds taken by each of ``repeats`` calls (after one untimed call if ``warm_up``)."""
    if warm_up:
        call()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples
