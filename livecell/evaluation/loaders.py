"""Reading the scorer's inputs from disk: the only module here that opens files.

Every failure to read (missing, unreadable, not UTF-8, malformed) becomes an
``InputError`` that names the input and, where there is one, the line.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from livecell.evaluation import tables
from livecell.evaluation.errors import InputError
from livecell.evaluation.tables import EventSet, GroundTruth, TrackTable

TRUTH_FILES = ("tracks.csv", "deaths.csv", "contacts.csv", "wells.csv", "patches.csv")


def read_csv(
    path: Path, *, key: str, written_live: bool = False
) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV file; an empty (zero-byte) file is an empty table.

    ``written_live``: a file a program appends to as it runs (livecell's tracks file),
    whose last row without its newline is a write cut short (a crash, or a copy taken
    mid-write): it is left out, as the events file's is.
    """
    try:
        with open(path, newline="", encoding="utf-8") as f:
            text = f.read()
        if written_live and text and not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = list(reader)
        columns = list(reader.fieldnames or [])
    except FileNotFoundError:
        raise InputError(key, f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(key, f"cannot read {path}: {exc}") from None
    for line, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            raise InputError(key, f"line {line}: has not the {len(columns)} columns of the header")
    return columns, rows


def load_ground_truth(folder: Path) -> GroundTruth:
    """Parse ``folder`` (``OUT/ground_truth``); files it lacks are ``None`` in the result."""
    key = "GROUND_TRUTH_DIR"
    if not folder.is_dir():
        raise InputError(key, f"{folder} is not a folder")
    present = [name for name in TRUTH_FILES if (folder / name).is_file()]
    if not present:
        raise InputError(
            key, f"{folder} holds none of {', '.join(TRUTH_FILES)}: not a ground-truth folder"
        )

    def parsed(name: str, build: Any) -> Any:
        path = folder / name
        if not path.is_file():
            return None
        columns, rows = read_csv(path, key=f"{key}/{name}")
        return build(rows, columns, source=f"{key}/{name}")

    return GroundTruth(
        tracks=parsed("tracks.csv", tables.track_table),
        deaths=parsed("deaths.csv", tables.truth_deaths),
        contacts=parsed("contacts.csv", tables.truth_contacts),
        wells=parsed("wells.csv", tables.truth_wells),
        patches=parsed("patches.csv", tables.patch_table),
    )


def load_tracks(path: Path, *, key: str = "--tracks") -> TrackTable:
    """livecell's tracks file (SPEC 4: the columns of the simulator's ``tracks.csv``)."""
    columns, rows = read_csv(path, key=key, written_live=True)
    return tables.track_table(rows, columns or list(tables.TRACK_COLUMNS), source=key)


def _json_lines(path: Path, key: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(key, f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(key, f"cannot read {path}: {exc}") from None
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):
                # The last line without its newline: a write cut short (a crash); the
                # daemon itself skips it on restart, so does the scorer.
                return
            raise InputError(key, f"line {number}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise InputError(key, f"line {number}: not a JSON object")
        yield number, record


def load_events(path: Path, *, key: str = "--events") -> EventSet:
    """livecell's events file (SPEC 4, JSON Lines)."""
    return tables.event_set(_json_lines(path, key), source=key)


def ctc_sequences(
    ground_truth: Path, results: Path, *, key: str = "--ctc"
) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """``(position, ground-truth sequence folder, result folder)`` for each position to
    score, and the ground-truth positions without a result.

    The ground truth of a position is ``ground_truth/<position>/TRA/``. Results are
    either one folder holding ``res_track.txt`` and ``mask###.tif`` (then the
    ground truth must have exactly one position, or a position of the same name
    as the folder), or a folder with one such subfolder per position, named as
    the position.
    """
    if not results.is_dir():
        raise InputError(key, f"{results} is not a folder")
    truth = {
        p.name: p for p in sorted(ground_truth.iterdir()) if (p / "TRA" / "man_track.txt").is_file()
    }
    if not truth:
        raise InputError("GROUND_TRUTH_DIR", f"{ground_truth} has no <position>/TRA/man_track.txt")
    if (results / "res_track.txt").is_file():
        if results.name in truth:
            chosen = results.name
        elif len(truth) == 1:
            (chosen,) = truth
        else:
            raise InputError(
                key,
                f"{results} holds one result but the ground truth has {len(truth)} positions; "
                "give a folder with one subfolder per position",
            )
        return [(chosen, truth[chosen], results)], [p for p in truth if p != chosen]
    pairs = [
        (position, folder, results / position)
        for position, folder in truth.items()
        if (results / position / "res_track.txt").is_file()
    ]
    if not pairs:
        raise InputError(
            key,
            f"{results} holds no res_track.txt, neither itself nor in a subfolder named as a "
            f"position ({', '.join(truth)})",
        )
    return pairs, [p for p in truth if not (results / p / "res_track.txt").is_file()]
