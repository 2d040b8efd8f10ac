"""Tiny hand-made ground truths for the scorer's tests, and the errors injected into them.

Imported by the tests as ``from evaluation_scenes import ...`` (pytest puts the
test folder on the path). A ``Scene`` is a ground truth as CSV rows in the
SPEC 5 columns; ``truth_of`` parses it with the scorer's own table builders
and ``write_truth`` writes it as a ``ground_truth/`` folder.

Layout of a nanowell scene: wells in a row, 300 px apart; the cells of a well
sit in lanes 90 px apart with a few pixels of jitter per frame, so two cells
of a well are never within the scorer's 15 px matching distance of each other.
The first well of the first position always holds two cells, its first cell
always dies, and patch (0, 0) of the first frame always holds a cell, so each
injected error always has somewhere to go.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from livecell.evaluation import tables
from livecell.evaluation.tables import GroundTruth, TrackTable
from livecell.simulation.scene import (
    CELL_TYPES,
    DEATH_PATHWAYS,
    EMPTY_PATCH,
    LIVE,
    PATCH_STATES,
    well_id,
)

WELL_PX = 300
LANE_PX = 90


@dataclass
class Scene:
    tracks: list[dict[str, Any]] = field(default_factory=list)
    deaths: list[dict[str, Any]] = field(default_factory=list)
    contacts: list[dict[str, Any]] = field(default_factory=list)
    wells: list[dict[str, Any]] = field(default_factory=list)
    patches: list[dict[str, Any]] = field(default_factory=list)


def make_scene(
    rng: np.random.Generator,
    *,
    positions: int = 1,
    frames: int = 8,
    wells: int = 2,
    max_cells: int = 3,
    patch_grid: tuple[int, int] = (2, 3),
    death_rate: float = 0.4,
) -> Scene:
    """A small nanowell scene (with a patch grid too, so every section has truth)."""
    scene = Scene()
    for p_index in range(positions):
        position = f"p{p_index}" if p_index else "0"  # a numeric name must stay a string
        next_track = 1
        for w in range(wells):
            well = well_id(0, w)
            x0 = w * WELL_PX
            scene.wells.append(
                {
                    "position": position,
                    "well": well,
                    "row": 0,
                    "col": w,
                    "x0": x0,
                    "y0": 0,
                    "x1": x0 + WELL_PX,
                    "y1": WELL_PX,
                }
            )
            first = p_index == 0 and w == 0
            n_cells = 2 if first else int(rng.integers(1, max_cells + 1))
            well_tracks = []
            for lane in range(n_cells):
                track = next_track
                next_track += 1
                well_tracks.append(track)
                cell_type = CELL_TYPES[int(rng.integers(len(CELL_TYPES)))]
                dies = (first and lane == 0) or rng.random() < death_rate
                pathway = DEATH_PATHWAYS[int(rng.integers(len(DEATH_PATHWAYS)))]
                onset = int(rng.integers(0, frames))
                if dies:
                    scene.deaths.append(
                        {
                            "position": position,
                            "track": track,
                            "well": well,
                            "pathway": pathway,
                            "onset_t": onset,
                            "marker_t": onset + int(rng.integers(0, 7)),
                        }
                    )
                cx, cy = x0 + 60 + LANE_PX * lane, WELL_PX / 2
                for t in range(frames):
                    jitter = rng.uniform(-3, 3, size=2)
                    scene.tracks.append(
                        {
                            "position": position,
                            "t": t,
                            "track": track,
                            "well": well,
                            "x": f"{cx + jitter[0]:.3f}",
                            "y": f"{cy + jitter[1]:.3f}",
                            "area": int(rng.integers(300, 900)),
                            "cell_type": cell_type,
                            "state": pathway if dies and t >= onset else LIVE,
                        }
                    )
            for i, a in enumerate(well_tracks):
                for b in well_tracks[i + 1 :]:
                    if rng.random() < 0.5:
                        start = int(rng.integers(0, frames))
                        end = int(rng.integers(start, frames))
                        scene.contacts.append(
                            {
                                "position": position,
                                "well": well,
                                "track_a": a,
                                "track_b": b,
                                "start_t": start,
                                "end_t": end,
                            }
                        )
        rows, cols = patch_grid
        labels = (*PATCH_STATES, EMPTY_PATCH)
        for t in range(frames):
            for r in range(rows):
                for c in range(cols):
                    state = labels[int(rng.integers(len(labels)))]
                    if p_index == 0 and t == 0 and (r, c) == (0, 0) and state == EMPTY_PATCH:
                        state = PATCH_STATES[0]
                    scene.patches.append(
                        {"position": position, "t": t, "row": r, "col": c, "state": state}
                    )
    return scene


def _rows(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{k: str(v) for k, v in row.items()} for row in rows]


def truth_of(scene: Scene) -> GroundTruth:
    """The scene parsed as the loader would parse its files."""
    return GroundTruth(
        tracks=tables.track_table(_rows(scene.tracks), tables.TRACK_COLUMNS, source="tracks"),
        deaths=tables.truth_deaths(_rows(scene.deaths), tables.DEATH_COLUMNS, source="deaths"),
        contacts=tables.truth_contacts(
            _rows(scene.contacts), tables.CONTACT_COLUMNS, source="contacts"
        ),
        wells=tables.truth_wells(_rows(scene.wells), tables.WELL_COLUMNS, source="wells"),
        patches=tables.patch_table(_rows(scene.patches), tables.PATCH_COLUMNS, source="patches"),
    )


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_truth(folder: Path, scene: Scene, *, patches: bool = True) -> Path:
    """Write ``scene`` as a SPEC 5 ``ground_truth/`` folder (no TRA images)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "tracks.csv", tables.TRACK_COLUMNS, scene.tracks)
    write_csv(folder / "deaths.csv", tables.DEATH_COLUMNS, scene.deaths)
    write_csv(folder / "contacts.csv", tables.CONTACT_COLUMNS, scene.contacts)
    write_csv(folder / "wells.csv", tables.WELL_COLUMNS, scene.wells)
    if patches:
        write_csv(folder / "patches.csv", tables.PATCH_COLUMNS, scene.patches)
    return folder


def write_events(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def write_tracks(path: Path, table: TrackTable) -> Path:
    rows = [
        {name: getattr(table, name)[i].item() for name in tables.TRACK_COLUMNS}
        for i in range(len(table))
    ]
    return write_csv(path, tables.TRACK_COLUMNS, rows)


# --- injected errors ------------------------------------------------------------------------


def swap_identities(
    tracks: TrackTable,
    events: list[dict[str, Any]],
    *,
    position: str,
    a: int,
    b: int,
    from_t: int,
) -> tuple[TrackTable, list[dict[str, Any]]]:
    """A tracker that swaps the ids of cells ``a`` and ``b`` from frame ``from_t`` on.

    A real tracker then reports everything about those cells under the swapped
    ids: tracks rows and the events of later frames alike.
    """

    def swapped(track: int) -> int:
        return b if track == a else a if track == b else track

    later = (tracks.position == position) & (tracks.t >= from_t)
    new_ids = tracks.track.copy()
    new_ids[later] = [swapped(int(v)) for v in tracks.track[later]]
    new_tracks = replace(tracks, track=new_ids)
    out = []
    for e in events:
        if e["position"] == position and e["t"] >= from_t:
            e = dict(e)
            if "track" in e:
                e["track"] = swapped(e["track"])
            if "tracks" in e:
                e["tracks"] = [swapped(v) for v in e["tracks"]]
        out.append(e)
    return new_tracks, out


def without(events: list[dict[str, Any]], index: int) -> list[dict[str, Any]]:
    return events[:index] + events[index + 1 :]


def with_fields(events: list[dict[str, Any]], index: int, **fields: Any) -> list[dict[str, Any]]:
    return [dict(e, **fields) if i == index else e for i, e in enumerate(events)]


def with_patch_class(
    events: list[dict[str, Any]], index: int, row: int, col: int, class_index: int
) -> list[dict[str, Any]]:
    """Event ``index`` (a ``patch_states``) with patch (row, col) called ``class_index``."""
    event = json.loads(json.dumps(events[index]))
    event["states"][row][col] = class_index
    if "probabilities" in event:
        event["probabilities"][row][col] = [
            1.0 if k == class_index else 0.0 for k in range(len(event["classes"]))
        ]
    return [event if i == index else e for i, e in enumerate(events)]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b.0.c": leaf}`` of a JSON-like value, to compare reports field by field."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}{i}."))
        return out or {prefix.rstrip("."): []}
    return {prefix.rstrip("."): value}


def changed(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    a, b = flatten(before), flatten(after)
    return {k for k in a.keys() | b.keys() if a.get(k, "<absent>") != b.get(k, "<absent>")}
