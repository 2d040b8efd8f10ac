"""Acquisition, position and time index from a file's path (SPEC 3.1).

The default rule: the parent folder's name is the position and the last run of
digits in the file name is ``t``; the acquisition is the watched folder's name
unless the regex has an ``acquisition`` group or the config names one.
"""

from __future__ import annotations

import re
from pathlib import Path

from livecell.errors import RejectedFrame
from livecell.frames import MAX_T, FrameKey


def key_from_path(
    path: Path, *, root: Path, pattern: re.Pattern[str], acquisition: str
) -> FrameKey:
    """Raise ``RejectedFrame("no_position_t")`` if the regex does not match or t is too large."""
    match = pattern.search(path.as_posix())
    if match is None:
        raise RejectedFrame(
            "no_position_t",
            f"cannot read position and t from {path.name!r} with source.path_regex",
        )
    groups = match.groupdict()
    name = groups.get("acquisition") or acquisition or root.name
    t = int(groups["t"])
    if t > MAX_T:
        raise RejectedFrame("no_position_t", f"t {groups['t']} in {path.name!r} is too large")
    for what, value in (("acquisition", name), ("position", groups["position"])):
        if not _is_utf8(value):
            raise RejectedFrame("no_position_t", f"the {what} in {path.name!r} is not valid UTF-8")
    return FrameKey(acquisition=name, position=groups["position"], t=t)


def _is_utf8(text: str) -> bool:
    """False for names the file system gave as undecodable bytes (surrogate escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
