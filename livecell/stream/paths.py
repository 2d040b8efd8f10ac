"""Acquisition, position and time index from a file's path (SPEC 3.1).

The default rule: the parent folder's name is the position and the last run of
digits in the file name is ``t``. The acquisition is the regex's ``acquisition``
group, else the configured name, else the folders between the watched folder and
the file, less the position's own folder (``exp2`` for ``ROOT/exp2/Pos0/t1.tif``),
else the watched folder's name: each experiment folder under a watched data root
is its own acquisition, so its frames are never taken for another's.
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
    name = (
        groups.get("acquisition") or acquisition or _folders_above(path, root, groups["position"])
    )
    t = int(groups["t"])
    if t > MAX_T:
        raise RejectedFrame("no_position_t", f"t {groups['t']} in {path.name!r} is too large")
    for what, value in (("acquisition", name), ("position", groups["position"])):
        if not _is_utf8(value):
            raise RejectedFrame("no_position_t", f"the {what} in {path.name!r} is not valid UTF-8")
    return FrameKey(acquisition=name, position=groups["position"], t=t)


def _folders_above(path: Path, root: Path, position: str) -> str:
    """The folders from ``root`` down to ``path``'s, less a last one named ``position``,
    joined by ``/``; ``root``'s name where none are left."""
    try:
        folders = path.parent.relative_to(root).parts
    except ValueError:
        return root.name
    if folders and folders[-1] == position:
        folders = folders[:-1]
    return "/".join(folders) or root.name


def _is_utf8(text: str) -> bool:
    """False for names the file system gave as undecodable bytes (surrogate escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
