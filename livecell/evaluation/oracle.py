"""What a perfect analysis would emit for a ground truth: events (SPEC 4) and a tracks table.

Scoring these against the same ground truth gives perfect scores; it is how
the scorer is tested, and a starting point for injecting known errors. The
events follow livecell's conventions: a death is reported at its onset frame,
a contact ends (``contact_end``) at the first frame after the contact, a cell
type is reported at the track's first frame, patch states carry one-hot
``probabilities``, holotomography deaths name the 160 px patch holding the cell.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from livecell.evaluation.tables import GroundTruth, TrackTable
from livecell.events import SCHEMA_VERSION, stable_id
from livecell.simulation.scene import DEFAULT_PATCH_SIZE_PX, EMPTY_PATCH, PATCH_STATES

ACQUISITION = "oracle"


def _event(kind: str, position: str, t: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": stable_id(kind, ACQUISITION, position, t, fields),
        "kind": kind,
        "v": SCHEMA_VERSION,
        "acquisition": ACQUISITION,
        "position": position,
        "t": t,
        "emitted_at": 0.0,
        "latency_s": 0.0,
        **fields,
    }


def _cells(
    tracks: TrackTable | None,
) -> dict[tuple[str, int], list[tuple[int, str, float, float, str]]]:
    """``(position, track) -> [(t, well, x, y, cell_type)]`` in time order."""
    out: dict[tuple[str, int], list[tuple[int, str, float, float, str]]] = defaultdict(list)
    if tracks is not None:
        for p, t, track, well, x, y, cell_type in zip(
            tracks.position.tolist(),
            tracks.t.tolist(),
            tracks.track.tolist(),
            tracks.well.tolist(),
            tracks.x.tolist(),
            tracks.y.tolist(),
            tracks.cell_type.tolist(),
            strict=True,
        ):
            out[(p, track)].append((t, well, x, y, cell_type))
    for rows in out.values():
        rows.sort()
    return out


def patch_events(truth: GroundTruth, *, probabilities: bool = True) -> list[dict[str, Any]]:
    if truth.patches is None or not len(truth.patches):
        return []
    patches = truth.patches
    grids: dict[str, tuple[int, int]] = {}
    for p, row, col in zip(
        patches.position.tolist(), patches.row.tolist(), patches.col.tolist(), strict=True
    ):
        rows, cols = grids.get(p, (0, 0))
        grids[p] = (max(rows, row + 1), max(cols, col + 1))
    states: dict[tuple[str, int], np.ndarray] = {}
    for p, t, row, col, state in zip(
        patches.position.tolist(),
        patches.t.tolist(),
        patches.row.tolist(),
        patches.col.tolist(),
        patches.state.tolist(),
        strict=True,
    ):
        grid = states.setdefault((p, t), np.full(grids[p], -1, dtype=np.int64))
        grid[row, col] = -1 if state == EMPTY_PATCH else PATCH_STATES.index(state)
    out = []
    eye = np.eye(len(PATCH_STATES))
    for (p, t), grid in sorted(states.items()):
        fields: dict[str, Any] = {
            "classes": list(PATCH_STATES),
            "patch_size": DEFAULT_PATCH_SIZE_PX,
            "grid": list(grid.shape),
            "states": grid.tolist(),
            "counts": {c: int((grid == k).sum()) for k, c in enumerate(PATCH_STATES)},
        }
        if probabilities:
            fields["probabilities"] = np.where(
                (grid >= 0)[..., None], eye[np.maximum(grid, 0)], 0.0
            ).tolist()
        out.append(_event("patch_states", p, t, **fields))
    return out


def death_events(truth: GroundTruth) -> list[dict[str, Any]]:
    cells = _cells(truth.tracks)
    out = []
    for d in truth.deaths or ():
        where: dict[str, Any]
        if d.well:
            where = {"well": d.well, "track": d.track}
        else:
            rows = cells.get((d.position, d.track), [])
            if not rows:
                continue
            _, _, x, y, _ = min(rows, key=lambda r: (abs(r[0] - d.onset_t), r[0]))
            where = {"patch": [int(y // DEFAULT_PATCH_SIZE_PX), int(x // DEFAULT_PATCH_SIZE_PX)]}
        out.append(
            _event(
                "death",
                d.position,
                d.onset_t,
                pathway=d.pathway,
                onset_t=d.onset_t,
                confidence=1.0,
                **where,
            )
        )
    return out


def contact_events(truth: GroundTruth) -> list[dict[str, Any]]:
    last: dict[str, int] = {}
    if truth.tracks is not None:
        for p, t in zip(truth.tracks.position.tolist(), truth.tracks.t.tolist(), strict=True):
            last[p] = max(last.get(p, t), t)
    out = []
    for c in truth.contacts or ():
        tracks = [c.track_a, c.track_b]
        out.append(_event("contact_start", c.position, c.start_t, well=c.well, tracks=tracks))
        if c.end_t < last.get(c.position, c.end_t):
            out.append(_event("contact_end", c.position, c.end_t + 1, well=c.well, tracks=tracks))
    return out


def cell_type_events(truth: GroundTruth) -> list[dict[str, Any]]:
    out = []
    for (p, track), rows in sorted(_cells(truth.tracks).items()):
        t, well, _, _, cell_type = rows[0]
        if well and cell_type:
            out.append(
                _event(
                    "cell_type", p, t, well=well, track=track, cell_type=cell_type, confidence=1.0
                )
            )
    return out


def perfect_events(truth: GroundTruth, *, probabilities: bool = True) -> list[dict[str, Any]]:
    """Every event a perfect analysis would emit, ordered by frame as the daemon writes them."""
    events = [
        *patch_events(truth, probabilities=probabilities),
        *death_events(truth),
        *contact_events(truth),
        *cell_type_events(truth),
    ]
    return sorted(events, key=lambda e: (e["position"], e["t"]))


def perfect_tracks(truth: GroundTruth) -> TrackTable:
    """The tracks file of a perfect tracker: the ground truth's own rows."""
    if truth.tracks is None:
        raise ValueError("the ground truth has no tracks.csv")
    return truth.tracks
