"""Moving unusable files out of the watched folder, with the reason beside them."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path


def quarantine_file(path: Path, *, quarantine_dir: Path, reason: str, detail: str) -> Path:
    """Move ``path`` into ``quarantine_dir`` and write ``<name>.reason.txt`` beside it.

    Names are made unique with a numeric suffix, so a second bad file of the same
    name never overwrites the first, and shortened where the reason file's name would
    pass the file system's 255 bytes (the reason file keeps the original path). Returns
    the new path.
    """
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    stem = _fitting_stem(path.stem, path.suffix)
    target = quarantine_dir / f"{stem}{path.suffix}"
    n = 1
    while target.exists() or target.with_name(target.name + ".reason.txt").exists():
        target = quarantine_dir / f"{stem}.{n}{path.suffix}"
        n += 1
    shutil.move(path, target)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    target.with_name(target.name + ".reason.txt").write_text(
        f"reason: {reason}\ndetail: {detail}\noriginal_path: {path}\nquarantined_at: {stamp}\n",
        encoding="utf-8",
        errors="backslashreplace",
    )
    return target


_NAME_MAX_BYTES = 255
_ROOM_BYTES = len(".reason.txt") + 8  # and a ".<n>" to make it unique


def _fitting_stem(stem: str, suffix: str) -> str:
    """``stem``, cut at a character boundary so that its quarantine names fit."""
    room = _NAME_MAX_BYTES - _ROOM_BYTES - len(os.fsencode(suffix))
    encoded = os.fsencode(stem)
    if len(encoded) <= room:
        return stem
    return encoded[:room].decode("utf-8", "ignore") or "file"
