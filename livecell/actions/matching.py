"""Which events fire an action: a pure function of the action's filters and the record."""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

from livecell.config import ActionConfig


def matches(action: ActionConfig, record: Mapping[str, Any]) -> bool:
    """True when ``record`` (an event as published to sinks) passes every filter of ``action``.

    A filter that is set needs its field in the record: an event without a
    ``confidence`` never passes ``min_confidence``, one without a ``well`` never
    passes ``well`` (an exact id or a glob such as ``r001c*``).
    """
    if record.get("kind") != action.kind:
        return False
    if action.pathway is not None and record.get("pathway") != action.pathway:
        return False
    if action.min_confidence is not None:
        confidence = record.get("confidence")
        if isinstance(confidence, bool) or not isinstance(confidence, int | float):
            return False
        if not confidence >= action.min_confidence:  # NaN never passes
            return False
    if action.well is not None:
        well = record.get("well")
        if not isinstance(well, str) or not fnmatchcase(well, action.well):
            return False
    return True
