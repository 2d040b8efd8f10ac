"""Moving unusable files out of the watched folder, with the reason beside them."""

from __future__ import annotations

import shutil
import time
from pathlib import Path


def quarantine_file(path: Path, *, quarantine_dir: Path, reason: str, detail: str) -> Path:
    """Move ``path`` into ``quarantine_dir`` and write ``<name>.reason.txt`` beside it.

    Names are made unique with a numeric suffix, so a second bad file of the same
    name never overwrites the first. Returns the new path.
    """
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    target = quarantine_dir / path.name
    n = 1
    while target.exists() or target.with_name(target.name + ".reason.txt").exists():
        target = quarantine_dir / f"{path.stem}.{n}{path.suffix}"
        n += 1
    shutil.move(path, target)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    target.with_name(target.name + ".reason.txt").write_text(
        f"reason: {reason}\ndetail: {detail}\noriginal_path: {path}\nquarantined_at: {stamp}\n",
        encoding="utf-8",
        errors="backslashreplace",
    )
    return target
