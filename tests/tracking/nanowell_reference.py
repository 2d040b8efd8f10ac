"""The tracker as it was before the per-well speed-up (a frozen copy), to pin its outputs.

Do not optimise this file: ``test_tracker_equivalence.py`` checks that
:class:`livecell.tracking.nanowell.NanowellTracker` gives exactly the same updates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from livecell.tracking.nanowell import TrackedCell, TrackerParams, WellUpdate
from livecell.tracking.observations import Observations, measure

__all__ = ["NanowellTracker", "touching_pairs"]

_FORBIDDEN = 1e12
_SMALL = 64  # cost entries up to which plain Python beats numpy's per-call overhead


@dataclass(slots=True)
class _Track:
    track: int
    x: float
    y: float
    area: float
    t_last: int
    label: int | None
    parent: int | None
    vx: float = 0.0
    vy: float = 0.0
    speed: float | None = None
    ref_area: float = 0.0  # the area while touching no other cell (overlaps hide parts)
    missed: int = 0


def _assign(cost: npt.NDArray[np.float64]) -> list[tuple[int, int]]:
    """Minimum-cost assignment; pairs at the forbidden cost are dropped."""
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return []
    if rows <= cols:
        best = cost.argmin(axis=1)
        if len(set(best.tolist())) == rows:  # every row takes its minimum: optimal
            pairs = list(enumerate(best.tolist()))
            return [(i, j) for i, j in pairs if cost[i, j] < _FORBIDDEN]
    else:
        best = cost.argmin(axis=0)
        if len(set(best.tolist())) == cols:
            return sorted((i, j) for j, i in enumerate(best.tolist()) if cost[i, j] < _FORBIDDEN)
    r, c = linear_sum_assignment(cost)
    return [(int(i), int(j)) for i, j in zip(r, c, strict=True) if cost[i, j] < _FORBIDDEN]


def _assign_small(cost: list[list[float]]) -> list[tuple[int, int]]:
    """:func:`_assign` over nested lists, with the same exact shortcut before scipy."""
    rows = len(cost)
    cols = len(cost[0]) if rows else 0
    if rows == 0 or cols == 0:
        return []
    if rows <= cols:
        best = [min(range(cols), key=row.__getitem__) for row in cost]
        if len(set(best)) == rows:
            return [(i, j) for i, j in enumerate(best) if cost[i][j] < _FORBIDDEN]
    else:
        best = [min(range(rows), key=lambda i: cost[i][j]) for j in range(cols)]
        if len(set(best)) == cols:
            return sorted((i, j) for j, i in enumerate(best) if cost[i][j] < _FORBIDDEN)
    return _assign(np.array(cost))


def _bbox_touching(obs: Observations) -> list[tuple[int, int]]:
    """Label pairs whose boxes, grown by one pixel, overlap (an over-approximation)."""
    b = obs.bbox
    n = len(b)
    if n < 2:
        return []
    x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    meet = (
        (x0[:, None] <= x1[None, :])
        & (x0[None, :] <= x1[:, None])
        & (y0[:, None] <= y1[None, :])
        & (y0[None, :] <= y1[:, None])
    )
    i, j = np.nonzero(np.triu(meet, 1))
    labels = obs.label.tolist()
    return [(labels[a], labels[c]) for a, c in zip(i.tolist(), j.tolist(), strict=True)]


@dataclass(slots=True)
class NanowellTracker:
    """Tracks the cells of one well (or one whole field) frame by frame; see the module doc."""

    params: TrackerParams = TrackerParams()  # noqa: RUF009 (frozen: one shared default is safe)
    _tracks: list[_Track] = field(default_factory=list, init=False, repr=False)
    _next_id: int = field(default=1, init=False, repr=False)
    _contacts: frozenset[tuple[int, int]] = field(default=frozenset(), init=False, repr=False)
    _t: int | None = field(default=None, init=False, repr=False)

    def update(self, labels: npt.NDArray[np.integer], t: int) -> WellUpdate:
        """Track frame ``t`` from its label image (0 background, one value per instance)."""
        pairs = touching_pairs(labels)
        return self.update_observations(
            measure(labels), t, touching=[(int(a), int(b)) for a, b in pairs.tolist()]
        )

    def update_observations(
        self,
        obs: Observations,
        t: int,
        *,
        touching: Iterable[tuple[int, int]] | None = None,
    ) -> WellUpdate:
        """Track frame ``t`` from measured instances; ``touching``: label pairs in contact.

        Without ``touching``, instances whose bounding boxes grown by a pixel overlap are
        taken as touching (more contacts than the masks would give).
        """
        if self._t is not None and t <= self._t:
            raise ValueError(f"frames must increase: {t} after {self._t}")
        self._t = t
        p = self.params
        pairs = _bbox_touching(obs) if touching is None else [(int(a), int(b)) for a, b in touching]
        in_contact = {label for pair in pairs for label in pair}
        labels = obs.label.tolist()
        xs = obs.x_px.tolist()
        ys = obs.y_px.tolist()
        areas = obs.area_px.tolist()
        n = len(labels)
        tracks = self._tracks
        m = len(tracks)
        prev_area = [tr.area for tr in tracks]
        link: dict[int, int] = {}  # track index -> instance index
        disagreements: list[int] = []
        if m and n:
            link, disagreements = self._link(obs, t)
        taken = set(link.values())
        left = [j for j in range(n) if j not in taken]
        started: list[int] = []
        ended: list[int] = []
        new_tracks: list[_Track] = []
        # divisions: a left-over instance beside a linked track that halved
        divided: set[int] = set()
        lo, hi = p.mitosis_area_ratio
        for j in list(left):
            best: tuple[float, int] | None = None
            for i, k in link.items():
                if i in divided or prev_area[i] <= 0:
                    continue
                r_kept, r_new = areas[k] / prev_area[i], areas[j] / prev_area[i]
                d = math.hypot(xs[k] - xs[j], ys[k] - ys[j])
                halves = lo <= r_kept <= hi and lo <= r_new <= hi
                if halves and d <= p.mitosis_distance_px and (best is None or d < best[0]):
                    best = (d, i)
            if best is not None:
                i = best[1]
                divided.add(i)
                left.remove(j)
                parent = tracks[i].track
                ended.append(parent)
                for k in sorted((link[i], j)):
                    new_tracks.append(self._new(xs[k], ys[k], areas[k], t, labels[k], parent))
                    started.append(new_tracks[-1].track)
        for i in divided:
            del link[i]
        # containment: left-over instances go to held (unlinked) tracks first
        unlinked = [i for i in range(m) if i not in link and i not in divided]
        if p.containment and left and unlinked:
            cost = np.array(
                [[math.hypot(xs[j] - tracks[i].x, ys[j] - tracks[i].y) for j in left]
                 for i in unlinked]
            )  # fmt: skip
            for a, b in _assign(cost):
                link[unlinked[a]] = left[b]
            taken = set(link.values())
            left = [j for j in left if j not in taken]
        kept: list[_Track] = []
        for i, tr in enumerate(tracks):
            if i in divided:
                continue
            found = link.get(i)
            if found is None:
                tr.missed += 1
                tr.label = None
                if tr.missed > p.max_missed_frames:
                    ended.append(tr.track)
                    continue
            else:
                k = found
                gap = t - tr.t_last
                s = p.velocity_smoothing if tr.speed is not None else 1.0  # first step: as is
                tr.vx = s * (xs[k] - tr.x) / gap + (1 - s) * tr.vx
                tr.vy = s * (ys[k] - tr.y) / gap + (1 - s) * tr.vy
                step = math.hypot(xs[k] - tr.x, ys[k] - tr.y) / gap
                tr.speed = s * step + (1 - s) * (tr.speed or 0.0)
                tr.x, tr.y, tr.area, tr.t_last = xs[k], ys[k], areas[k], t
                if labels[k] not in in_contact:
                    s = p.velocity_smoothing
                    tr.ref_area = s * areas[k] + (1 - s) * tr.ref_area
                tr.label, tr.missed = labels[k], 0
            kept.append(tr)
        for j in left:
            new_tracks.append(self._new(xs[j], ys[j], areas[j], t, labels[j], None))
            started.append(new_tracks[-1].track)
        kept.extend(new_tracks)
        kept.sort(key=lambda tr: tr.track)
        self._tracks = kept
        self._contacts = self._touching(pairs)
        cells = tuple(
            TrackedCell(
                track=tr.track,
                label=tr.label,
                x=tr.x,
                y=tr.y,
                area_px=tr.area,
                measured=tr.missed == 0,
                parent=tr.parent,
            )
            for tr in kept
        )
        return WellUpdate(
            t=t,
            cells=cells,
            started=tuple(sorted(started)),
            ended=tuple(sorted(ended)),
            contacts=self._contacts,
            disagreements=tuple(sorted(disagreements)),
        )

    def _new(
        self, x: float, y: float, area: float, t: int, label: int, parent: int | None
    ) -> _Track:
        track = _Track(self._next_id, x, y, area, t, label, parent, ref_area=area)
        self._next_id += 1
        return track

    def _link(self, obs: Observations, t: int) -> tuple[dict[int, int], list[int]]:
        """Forward and backward assignment of the current tracks to the instances."""
        if len(self._tracks) * len(obs) <= _SMALL:
            forward, backward = self._costs_small(obs, t)
            ahead = dict(_assign_small(forward))
            behind = dict(_assign_small(backward))
        else:
            f, b = self._costs(obs, t)
            ahead, behind = dict(_assign(f)), dict(_assign(b))
        tracks = self._tracks
        disagree = [tracks[i].track for i in sorted(set(ahead) | set(behind)) if
                    ahead.get(i) != behind.get(i)]  # fmt: skip
        return ahead, disagree

    def _costs_small(self, obs: Observations, t: int) -> tuple[list[list[float]], ...]:
        """:meth:`_costs` in plain Python: faster for a well's few cells than numpy calls."""
        p = self.params
        xs, ys, areas = obs.x_px.tolist(), obs.y_px.tolist(), obs.area_px.tolist()
        hypot = math.hypot
        forward: list[list[float]] = []
        backward: list[list[float]] = []
        shapes: list[list[float]] = []
        w_last, w_pred, w_shape = p.distance_weight, p.prediction_weight, p.shape_weight_px
        w_speed = p.speed_weight
        points = list(zip(xs, ys, areas, strict=True))
        for tr in self._tracks:
            dt = t - tr.t_last
            lx, ly = tr.x, tr.y
            px, py = lx + tr.vx * dt, ly + tr.vy * dt
            gate = p.max_link_distance_px * (1 + tr.missed)
            ra = tr.ref_area
            speed = 0.0 if tr.speed is None else tr.speed
            row_f, row_b, row_s = [], [], []
            for x, y, a in points:
                d_last = hypot(x - lx, y - ly)
                d_pred = hypot(x - px, y - py)
                shape = (ra - a) / ra if a < ra else ((a - ra) / a if a > 0 else 0.0)
                base = w_last * d_last + w_shape * shape
                if w_speed > 0:
                    base += w_speed * abs(d_last / dt - speed)
                if d_last > gate and d_pred > gate:
                    row_f.append(_FORBIDDEN)
                    row_b.append(_FORBIDDEN)
                else:
                    row_f.append(base + w_pred * d_pred)
                    row_b.append(base)
                row_s.append(shape)
            forward.append(row_f)
            backward.append(row_b)
            shapes.append(row_s)
        if self._contacts and p.contact_penalty > 0:
            penalty = self._contact_penalty(np.array(shapes))
            for i, j in zip(*np.nonzero(penalty), strict=True):
                for cost in (forward, backward):
                    if cost[i][j] < _FORBIDDEN:
                        cost[i][j] += p.contact_penalty
        return forward, backward

    def _costs(
        self, obs: Observations, t: int
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Forward (with the motion model) and backward costs, ``[tracks, instances]``."""
        p = self.params
        tracks = self._tracks
        last_x = np.array([tr.x for tr in tracks])
        last_y = np.array([tr.y for tr in tracks])
        dt = np.array([t - tr.t_last for tr in tracks], np.float64)
        pred_x = last_x + np.array([tr.vx for tr in tracks]) * dt
        pred_y = last_y + np.array([tr.vy for tr in tracks]) * dt
        area = np.array([tr.ref_area for tr in tracks])
        d_last = np.hypot(obs.x_px[None, :] - last_x[:, None], obs.y_px[None, :] - last_y[:, None])
        d_pred = np.hypot(obs.x_px[None, :] - pred_x[:, None], obs.y_px[None, :] - pred_y[:, None])
        shape = 1.0 - np.minimum(area[:, None], obs.area_px[None, :]) / np.maximum(
            np.maximum(area[:, None], obs.area_px[None, :]), 1e-9
        )
        base = p.distance_weight * d_last + p.shape_weight_px * shape
        if p.speed_weight > 0:
            speed = np.array([0.0 if tr.speed is None else tr.speed for tr in tracks])
            base = base + p.speed_weight * np.abs(d_last / dt[:, None] - speed[:, None])
        forward = base + p.prediction_weight * d_pred
        gate = p.max_link_distance_px * (1 + np.array([tr.missed for tr in tracks]))
        far = np.minimum(d_last, d_pred) > gate[:, None]
        if self._contacts and p.contact_penalty > 0:
            penalty = self._contact_penalty(shape)
            forward = forward + penalty
            base = base + penalty
        return np.where(far, _FORBIDDEN, forward), np.where(far, _FORBIDDEN, base)

    def _contact_penalty(self, cost: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """``contact_penalty`` where the instance's shape fits a contact partner best."""
        ids = [tr.track for tr in self._tracks]
        index = {track: i for i, track in enumerate(ids)}
        owner = cost.argmin(axis=0)
        penalty = np.zeros_like(cost)
        for a, b in self._contacts:
            ia, ib = index.get(a), index.get(b)
            if ia is None or ib is None:
                continue
            penalty[ia, owner == ib] = self.params.contact_penalty
            penalty[ib, owner == ia] = self.params.contact_penalty
        return penalty

    def _touching(self, pairs: Iterable[tuple[int, int]]) -> frozenset[tuple[int, int]]:
        track_of = {tr.label: tr.track for tr in self._tracks if tr.label is not None}
        out = set()
        for a, b in pairs:
            ta, tb = track_of.get(int(a)), track_of.get(int(b))
            if ta is not None and tb is not None and ta != tb:
                out.add((ta, tb) if ta < tb else (tb, ta))
        return frozenset(out)


def touching_pairs(labels: npt.NDArray[np.integer]) -> npt.NDArray[np.int64]:
    """Pairs ``[P, 2]`` (``a < b``, sorted, unique) of instances that touch.

    Two instances touch when one, dilated by one pixel (3 x 3 square), meets the other:
    in a label image that is two different non-zero labels at 8-neighbouring pixels.
    Where cells overlap, the label image shows the top one bordered by the other, so
    overlapping cells are touching pairs too.
    """
    image = np.asarray(labels)
    if image.ndim != 2:
        raise ValueError(f"labels must be a 2-D image, got shape {image.shape}")
    found: list[npt.NDArray[np.int64]] = []
    for a, b in (
        (image[:, :-1], image[:, 1:]),
        (image[:-1, :], image[1:, :]),
        (image[:-1, :-1], image[1:, 1:]),
        (image[:-1, 1:], image[1:, :-1]),
    ):
        differ = (a != b) & (a > 0) & (b > 0)
        if differ.any():
            found.append(np.stack([a[differ], b[differ]], axis=1).astype(np.int64))
    if not found:
        return np.zeros((0, 2), np.int64)
    pairs = np.sort(np.concatenate(found), axis=1)
    return np.unique(pairs, axis=0)
