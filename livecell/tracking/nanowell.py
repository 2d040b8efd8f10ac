"""The per-well cell tracker (DESIGN.md, Tracking): one :class:`NanowellTracker` per well.

Owns the linking of one well's (or one whole field's) instances from frame to frame:

- cost of linking track ``i`` to instance ``j``: ``distance_weight`` x the distance from
  the track's last position + ``prediction_weight`` x the distance from its
  velocity-predicted position + ``speed_weight`` x the change of step length +
  ``shape_weight_px`` x ``(1 - area ratio)`` (the track's area taken while it touched
  no other cell, as an overlap hides part of a cell) + a ``contact_penalty`` when ``j``'s
  area fits a track that ``i`` was touching in the previous frame better than it fits
  ``i`` (so two cells that part after a contact keep their identities) +
  ``appearance_weight_px`` x the L1 distance, in units of ``appearance_scale``, between
  ``j``'s appearance (:data:`~livecell.tracking.observations.APPEARANCE_FEATURES`, when
  the observations carry it) and the track's running appearance (updated at
  ``velocity_smoothing`` while the cell touches no other cell, at the slower
  ``appearance_contact_smoothing`` while it does: features drift over a long contact);
  both distance weights of a track slower than ``slow_speed_px`` multiplied by
  ``slow_speed_px / speed`` (at most ``slow_gain_max``): a still cell rarely jumps, so
  its changing area or pixels (it is dying, or half under a neighbour) do not hand
  its identity to another cell;
- assignment by the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``; an
  exact shortcut when every row's, or every column's, cheapest entry is distinct),
  forward (with the motion model) and backward (from the new frame, without it); tracks
  the two disagree on are flagged in :attr:`WellUpdate.disagreements`, the forward
  answer is kept;
- containment (``TrackerParams.containment``, on for wells): cells cannot leave a well,
  so a track left without an instance is a missed detection, held at its last position
  for up to ``max_missed_frames`` frames (then ended: the cell died or disappeared);
  an instance left over is first given to a held track, whatever the distance; with no
  track held, one that touches a linked track's instance, smaller than it, the two
  together about the track's area (``fragment_area_ratio``), is a piece of that cell
  cut off by the segmentation: the track takes both (area and centroid of the two,
  :attr:`TrackedCell.fragments`); only what is left then becomes a new track (the
  count genuinely rose). Without containment (a whole field), gates apply everywhere
  and left-over instances start tracks;
- mitosis: a left-over instance next to a track whose area fell (``mitosis_area_ratio``),
  the two together larger than the track was (``mitosis_min_growth``; two pieces of one
  cell add up to it): the parent ends, both halves start daughter tracks naming it;
- contacts: pairs of instances touching after a one-pixel dilation, or overlapping.

Gaps are filled afterwards by :func:`track_rows` (minimum velocity: a straight line
between the measured anchors, :func:`livecell.tracking.smoothing.fill_gaps`). Track ids
are local to the tracker (1, 2, 3, ...): no state is shared between trackers, and the
same inputs always give the same outputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from livecell.tracking.observations import Observations, measure, touching_pairs
from livecell.tracking.smoothing import fill_gaps

__all__ = [
    "NanowellTracker",
    "TrackRow",
    "TrackedCell",
    "TrackerParams",
    "WellUpdate",
    "track_rows",
]

_FORBIDDEN = 1e12
_SMALL = 64  # cost entries up to which plain Python beats numpy's per-call overhead
_NO_CONTACTS: frozenset[tuple[int, int]] = frozenset()


@dataclass(frozen=True, slots=True)
class TrackerParams:
    """The tracker's parameters; every one is checked when built (``ValueError``)."""

    max_link_distance_px: float = 250.0
    """Gate: a track never links to an instance farther than this from both its last and
    its predicted position (grows by the same amount for each frame the track was missed).
    Wider than a well (219 px): the simulator's effectors step 40-100 px a frame. Lower it
    for a whole field (``containment=False``), where it separates neighbours."""
    distance_weight: float = 0.3
    """Weight of the distance from the track's last position (px per px)."""
    prediction_weight: float = 1.0
    """Weight of the distance from the velocity-predicted position (px per px)."""
    speed_weight: float = 0.0
    """Weight of the change of step length (cells crawl at a steady speed; px per px)."""
    shape_weight_px: float = 1000.0
    """Cost, in px, of a full area mismatch (``1 - min/max`` of the areas = 1)."""
    appearance_weight_px: float = 30.0
    """Cost, in px, of one ``appearance_scale`` of L1 distance between an instance's
    appearance and the track's; applies only where the observations carry appearance
    (:func:`~livecell.tracking.observations.measure` given the image). 30 measured best on
    ground-truth masks (docs/tracking.md)."""
    appearance_scale: float = 0.01
    """The appearance difference taken as one unit: about the spread of one cell's mean
    and standard deviation of median-normalised pixels along its track (0.011, 0.013)."""
    appearance_contact_smoothing: float = 0.2
    """Weight of the newest appearance in the track's estimate while the cell touches
    another (its pixels mixed with the other's), in [0, 1]; 0: updated only apart."""
    slow_speed_px: float = 20.0
    """Tracks slower than this (px per frame) pay more per px of distance: the weights
    are multiplied by ``slow_speed_px / speed``, at most ``slow_gain_max``; 0: off."""
    slow_gain_max: float = 8.0
    """Largest multiplier of a slow track's distance weights."""
    contact_penalty: float = 0.0
    """Cost added against taking an instance whose area fits a contact partner better
    (DESIGN.md suggests ~100; measured on ground-truth masks it cost MOTA, so 0)."""
    velocity_smoothing: float = 0.5
    """Weight of the newest displacement in the velocity estimate, in (0, 1]."""
    max_missed_frames: int = 3
    """Frames a track is held without an instance before it ends."""
    containment: bool = True
    """Cells cannot leave (a nanowell): missing cells are missed detections, left-over
    instances go to held tracks first. Off for a whole field, where cells come and go."""
    mitosis_area_ratio: tuple[float, float] = (0.3, 0.95)
    """Range of a daughter's area over its parent's last area for a division."""
    mitosis_min_growth: float = 1.25
    """Least area of the two daughters together over the parent's last area: a rounded
    mitotic cell's footprint is small and its daughters spread at once (1.4-1.8 in the
    simulator), while two pieces of one cell cut by the segmentation add up to it."""
    mitosis_distance_px: float = 60.0
    """Most distance between the two daughters' centroids for a division."""
    fragment_area_ratio: tuple[float, float] = (0.75, 1.25)
    """Range of (instance + touching left-over) area over the track's area for the
    left-over to be taken as a fragment of the track's cell (containment only)."""

    def __post_init__(self) -> None:
        checks = (
            ("max_link_distance_px", self.max_link_distance_px > 0),
            ("distance_weight", self.distance_weight >= 0),
            ("prediction_weight", self.prediction_weight >= 0),
            ("speed_weight", self.speed_weight >= 0),
            ("shape_weight_px", self.shape_weight_px >= 0),
            ("appearance_weight_px", self.appearance_weight_px >= 0),
            ("appearance_scale", self.appearance_scale > 0),
            ("appearance_contact_smoothing", 0 <= self.appearance_contact_smoothing <= 1),
            ("slow_speed_px", self.slow_speed_px >= 0),
            ("slow_gain_max", self.slow_gain_max >= 1),
            ("contact_penalty", self.contact_penalty >= 0),
            ("velocity_smoothing", 0 < self.velocity_smoothing <= 1),
            ("max_missed_frames", self.max_missed_frames >= 0),
            ("mitosis_area_ratio", 0 < self.mitosis_area_ratio[0] < self.mitosis_area_ratio[1]),
            ("mitosis_distance_px", self.mitosis_distance_px >= 0),
            ("mitosis_min_growth", self.mitosis_min_growth >= 0),
            ("fragment_area_ratio", 0 < self.fragment_area_ratio[0] <= self.fragment_area_ratio[1]),
        )
        for name, ok in checks:
            if not ok:
                raise ValueError(f"TrackerParams.{name} is out of range: {getattr(self, name)!r}")


@dataclass(frozen=True, slots=True)
class TrackedCell:
    """One tracked cell at one frame; ``x``, ``y``, ``area_px`` as in the frame's labels.

    ``fragments``: labels of pieces of the same cell beside ``label`` (the segmentation
    cut it); ``x``, ``y`` and ``area_px`` are those of all its pieces together.
    """

    track: int
    label: int | None
    x: float
    y: float
    area_px: float
    measured: bool
    parent: int | None = None
    fragments: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class WellUpdate:
    """The tracker's answer for frame ``t``.

    ``cells``: every live track (measured, or held when missed), by track id;
    ``started``/``ended``: track ids that started at ``t`` / ended (their last measured
    frame is earlier: a parent at its division, a cell missed too long);
    ``contacts``: touching pairs of track ids ``(a, b)``, ``a < b``, at ``t``;
    ``disagreements``: tracks whose forward and backward assignments differed.
    """

    t: int
    cells: tuple[TrackedCell, ...]
    started: tuple[int, ...] = ()
    ended: tuple[int, ...] = ()
    contacts: frozenset[tuple[int, int]] = frozenset()
    disagreements: tuple[int, ...] = ()


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
    ref_app: tuple[float, ...] | None = None  # the appearance, taken as ``ref_area`` is
    missed: int = 0
    fragments: tuple[int, ...] = ()  # labels of the cell's other pieces at ``t_last``


def _slow_gain(speed: float | None, p: TrackerParams) -> float:
    """Multiplier of a track's distance weights: ``slow_speed_px / speed``, capped, for a
    track slower than ``slow_speed_px``; 1 otherwise (and for a track with no step yet)."""
    if speed is None or speed >= p.slow_speed_px:
        return 1.0
    return min(p.slow_gain_max, p.slow_speed_px / max(speed, 1e-9))


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
    # ``seq.index(min(seq))``: the first index of the minimum, as ``argmin`` gives
    if rows <= cols:
        best = [row.index(min(row)) for row in cost]
        if len(set(best)) == rows:
            return [(i, j) for i, j in enumerate(best) if cost[i][j] < _FORBIDDEN]
    else:
        columns = [list(column) for column in zip(*cost, strict=True)]
        best = [column.index(min(column)) for column in columns]
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

    params: TrackerParams = TrackerParams()  # frozen, so one shared default is safe
    _tracks: list[_Track] = field(default_factory=list, init=False, repr=False)
    _next_id: int = field(default=1, init=False, repr=False)
    _contacts: frozenset[tuple[int, int]] = field(default=frozenset(), init=False, repr=False)
    _t: int | None = field(default=None, init=False, repr=False)

    def update(
        self,
        labels: npt.NDArray[np.integer],
        t: int,
        image: npt.NDArray[np.number] | None = None,
    ) -> WellUpdate:
        """Track frame ``t`` from its label image (0 background, one value per instance);
        with ``image`` (the pixels the labels segment) appearance joins the cost."""
        pairs = touching_pairs(labels)
        return self.update_observations(
            measure(labels, image), t, touching=[(int(a), int(b)) for a, b in pairs.tolist()]
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
        pairs = _bbox_touching(obs) if touching is None else [(int(a), int(b)) for a, b in touching]
        apps = None if obs.appearance is None else [tuple(a) for a in obs.appearance.tolist()]
        return self._update(
            obs.label.tolist(), obs.x_px.tolist(), obs.y_px.tolist(), obs.area_px.tolist(), t,
            pairs, apps,
        )  # fmt: skip

    def _update(
        self,
        labels: list[int],
        xs: list[float],
        ys: list[float],
        areas: list[float],
        t: int,
        pairs: list[tuple[int, int]],
        apps: list[tuple[float, ...]] | None = None,
    ) -> WellUpdate:
        """:meth:`update_observations` on plain lists (``t`` already checked)."""
        self._t = t
        p = self.params
        n = len(labels)
        tracks = self._tracks
        m = len(tracks)
        link: dict[int, int] = {}  # track index -> instance index
        disagreements: list[int] = []
        if m and n:
            link, disagreements = self._link(xs, ys, areas, t, apps)
        if len(link) == n:
            left: list[int] = []
        else:
            taken = set(link.values())
            left = [j for j in range(n) if j not in taken]
        started: list[int] = []
        ended: list[int] = []
        new_tracks: list[_Track] = []
        divided: set[int] = set()
        if left:
            # divisions: a left-over instance beside a linked track that halved
            prev_area = [tr.area for tr in tracks]
            lo, hi = p.mitosis_area_ratio
            for j in list(left):
                best: tuple[float, int] | None = None
                for i, k in link.items():
                    if i in divided or prev_area[i] <= 0:
                        continue
                    r_kept, r_new = areas[k] / prev_area[i], areas[j] / prev_area[i]
                    d = math.hypot(xs[k] - xs[j], ys[k] - ys[j])
                    halves = lo <= r_kept <= hi and lo <= r_new <= hi
                    halves = halves and r_kept + r_new >= p.mitosis_min_growth
                    if halves and d <= p.mitosis_distance_px and (best is None or d < best[0]):
                        best = (d, i)
                if best is not None:
                    i = best[1]
                    divided.add(i)
                    left.remove(j)
                    parent = tracks[i].track
                    ended.append(parent)
                    for k in sorted((link[i], j)):
                        new_tracks.append(
                            self._new(xs[k], ys[k], areas[k], t, labels[k], parent, apps, k)
                        )
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
        pieces: dict[int, list[int]] = {}  # track index -> its fragments' instance indices
        if p.containment and left and pairs:  # no track is held: containment took them
            pieces = self._fragments(left, link, labels, areas, pairs)
            if pieces:
                taken = {j for js in pieces.values() for j in js}
                left = [j for j in left if j not in taken]
        in_contact = {label for pair in pairs for label in pair} if pairs else ()
        w_new = p.velocity_smoothing
        hypot = math.hypot
        kept: list[_Track] = []
        cells: list[TrackedCell] = []
        for i, tr in enumerate(tracks):
            found = link.get(i)
            fragments = pieces.get(i, [])
            if found is None:
                if i in divided:
                    continue
                tr.missed += 1
                tr.label = None
                if tr.missed > p.max_missed_frames:
                    ended.append(tr.track)
                    continue
            else:
                gap = t - tr.t_last
                x, y, area = xs[found], ys[found], areas[found]
                if fragments:
                    x, y, area = _together([found, *fragments], xs, ys, areas)
                s = w_new if tr.speed is not None else 1.0  # first step: as is
                tr.vx = s * (x - tr.x) / gap + (1 - s) * tr.vx
                tr.vy = s * (y - tr.y) / gap + (1 - s) * tr.vy
                step = hypot(x - tr.x, y - tr.y) / gap
                tr.speed = s * step + (1 - s) * (tr.speed or 0.0)
                tr.x, tr.y, tr.area, tr.t_last = x, y, area, t
                label = labels[found]
                apart = label not in in_contact and not fragments
                if apart:
                    tr.ref_area = w_new * area + (1 - w_new) * tr.ref_area
                if apps is not None:
                    ref, app = tr.ref_app, apps[found]
                    w = w_new if apart else p.appearance_contact_smoothing
                    tr.ref_app = (
                        app
                        if ref is None
                        else tuple(w * a + (1 - w) * r for a, r in zip(app, ref, strict=True))
                    )
                tr.label, tr.missed = label, 0
            tr.fragments = tuple(labels[j] for j in fragments)
            kept.append(tr)
            cells.append(
                TrackedCell(
                    tr.track, tr.label, tr.x, tr.y, tr.area, tr.missed == 0, tr.parent,
                    tr.fragments,
                )
            )  # fmt: skip
        for j in left:
            new_tracks.append(self._new(xs[j], ys[j], areas[j], t, labels[j], None, apps, j))
            started.append(new_tracks[-1].track)
        if new_tracks:  # ids above every kept track's, in order: ``kept`` stays sorted
            kept.extend(new_tracks)
            cells.extend(
                TrackedCell(tr.track, tr.label, tr.x, tr.y, tr.area, True, tr.parent)
                for tr in new_tracks
            )
        self._tracks = kept
        self._contacts = self._touching(pairs) if pairs else _NO_CONTACTS
        if len(started) > 1:
            started.sort()
        if len(ended) > 1:
            ended.sort()
        return WellUpdate(
            t,
            tuple(cells),
            tuple(started),
            tuple(ended),
            self._contacts,
            tuple(sorted(disagreements)) if disagreements else (),
        )

    def _new(
        self,
        x: float,
        y: float,
        area: float,
        t: int,
        label: int,
        parent: int | None,
        apps: list[tuple[float, ...]] | None,
        index: int,
    ) -> _Track:
        app = None if apps is None else apps[index]
        track = _Track(self._next_id, x, y, area, t, label, parent, ref_area=area, ref_app=app)
        self._next_id += 1
        return track

    def _link(
        self,
        xs: list[float],
        ys: list[float],
        areas: list[float],
        t: int,
        apps: list[tuple[float, ...]] | None = None,
    ) -> tuple[dict[int, int], list[int]]:
        """Forward and backward assignment of the current tracks to the instances."""
        if len(self._tracks) * len(xs) <= _SMALL:
            forward, backward = self._costs_small(xs, ys, areas, t, apps)
            ahead = _assign_small(forward)
            behind = _assign_small(backward)
        else:
            f, b = self._costs(np.array(xs), np.array(ys), np.array(areas), t, apps)
            ahead, behind = _assign(f), _assign(b)
        if ahead == behind:
            return dict(ahead), []
        link, back = dict(ahead), dict(behind)
        tracks = self._tracks
        disagree = [tracks[i].track for i in sorted(set(link) | set(back)) if
                    link.get(i) != back.get(i)]  # fmt: skip
        return link, disagree

    def _costs_small(
        self,
        xs: list[float],
        ys: list[float],
        areas: list[float],
        t: int,
        apps: list[tuple[float, ...]] | None = None,
    ) -> tuple[list[list[float]], list[list[float]]]:
        """:meth:`_costs` in plain Python: faster for a well's few cells than numpy calls."""
        p = self.params
        hypot = math.hypot
        forward: list[list[float]] = []
        backward: list[list[float]] = []
        shapes: list[list[float]] = []
        w_shape = p.shape_weight_px
        w_speed = p.speed_weight
        w_app = p.appearance_weight_px / p.appearance_scale
        use_app = apps is not None and p.appearance_weight_px > 0
        penalise = bool(self._contacts) and p.contact_penalty > 0
        points = list(zip(xs, ys, areas, strict=True))
        max_link = p.max_link_distance_px
        for tr in self._tracks:
            dt = t - tr.t_last
            lx, ly = tr.x, tr.y
            px, py = lx + tr.vx * dt, ly + tr.vy * dt
            gate = max_link * (1 + tr.missed)
            gain = _slow_gain(tr.speed, p)
            w_last, w_pred = p.distance_weight * gain, p.prediction_weight * gain
            ra = tr.ref_area
            speed = 0.0 if tr.speed is None else tr.speed
            ref = tr.ref_app if use_app else None
            row_f: list[float] = []
            row_b: list[float] = []
            add_f, add_b = row_f.append, row_b.append
            for j, (x, y, a) in enumerate(points):
                d_last = hypot(x - lx, y - ly)
                d_pred = hypot(x - px, y - py)
                if d_last > gate and d_pred > gate:
                    add_f(_FORBIDDEN)
                    add_b(_FORBIDDEN)
                    continue
                shape = (ra - a) / ra if a < ra else ((a - ra) / a if a > 0 else 0.0)
                base = w_last * d_last + w_shape * shape
                if w_speed > 0:
                    base += w_speed * abs(d_last / dt - speed)
                if ref is not None and apps is not None:
                    base += w_app * sum([abs(f - r) for f, r in zip(apps[j], ref, strict=True)])
                add_f(base + w_pred * d_pred)
                add_b(base)
            forward.append(row_f)
            backward.append(row_b)
            if penalise:
                shapes.append(
                    [(ra - a) / ra if a < ra else ((a - ra) / a if a > 0 else 0.0)
                     for _, _, a in points]
                )  # fmt: skip
        if penalise:
            penalty = self._contact_penalty(np.array(shapes))
            for i, j in zip(*np.nonzero(penalty), strict=True):
                for cost in (forward, backward):
                    if cost[i][j] < _FORBIDDEN:
                        cost[i][j] += p.contact_penalty
        return forward, backward

    def _costs(
        self,
        obs_x: npt.NDArray[np.float64],
        obs_y: npt.NDArray[np.float64],
        obs_area: npt.NDArray[np.float64],
        t: int,
        apps: list[tuple[float, ...]] | None = None,
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
        d_last = np.hypot(obs_x[None, :] - last_x[:, None], obs_y[None, :] - last_y[:, None])
        d_pred = np.hypot(obs_x[None, :] - pred_x[:, None], obs_y[None, :] - pred_y[:, None])
        shape = 1.0 - np.minimum(area[:, None], obs_area[None, :]) / np.maximum(
            np.maximum(area[:, None], obs_area[None, :]), 1e-9
        )
        gain = np.array([_slow_gain(tr.speed, p) for tr in tracks])[:, None]
        base = p.distance_weight * gain * d_last + p.shape_weight_px * shape
        if p.speed_weight > 0:
            speed = np.array([0.0 if tr.speed is None else tr.speed for tr in tracks])
            base = base + p.speed_weight * np.abs(d_last / dt[:, None] - speed[:, None])
        if apps is not None and p.appearance_weight_px > 0 and apps:
            base = base + self._appearance_costs(np.array(apps, np.float64))
        forward = base + p.prediction_weight * gain * d_pred
        gate = p.max_link_distance_px * (1 + np.array([tr.missed for tr in tracks]))
        far = np.minimum(d_last, d_pred) > gate[:, None]
        if self._contacts and p.contact_penalty > 0:
            penalty = self._contact_penalty(shape)
            forward = forward + penalty
            base = base + penalty
        return np.where(far, _FORBIDDEN, forward), np.where(far, _FORBIDDEN, base)

    def _appearance_costs(self, apps: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """``appearance_weight_px`` x the scaled L1 distance; 0 for tracks without one."""
        p = self.params
        tracks = self._tracks
        known = [i for i, tr in enumerate(tracks) if tr.ref_app is not None]
        out = np.zeros((len(tracks), len(apps)))
        if known:
            ref = np.array([tracks[i].ref_app for i in known], np.float64)
            distance = np.abs(apps[None, :, :] - ref[:, None, :]).sum(axis=2)
            out[known] = (p.appearance_weight_px / p.appearance_scale) * distance
        return out

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

    def _fragments(
        self,
        left: list[int],
        link: dict[int, int],
        labels: list[int],
        areas: list[float],
        pairs: list[tuple[int, int]],
    ) -> dict[int, list[int]]:
        """Left-over instances that are pieces of a linked track's cell (see the module doc)."""
        lo, hi = self.params.fragment_area_ratio
        touching = {(a, b) for a, b in pairs} | {(b, a) for a, b in pairs}
        pieces: dict[int, list[int]] = {}
        for j in sorted(left, key=lambda j: -areas[j]):
            best: tuple[float, int] | None = None
            for i, k in link.items():
                ref = self._tracks[i].ref_area
                if ref <= 0 or (labels[j], labels[k]) not in touching or areas[j] >= areas[k]:
                    continue
                ratio = (areas[k] + areas[j] + sum(areas[f] for f in pieces.get(i, ()))) / ref
                if lo <= ratio <= hi and (best is None or abs(ratio - 1) < best[0]):
                    best = (abs(ratio - 1), i)
            if best is not None:
                pieces.setdefault(best[1], []).append(j)
        return pieces

    def _touching(self, pairs: Iterable[tuple[int, int]]) -> frozenset[tuple[int, int]]:
        track_of = {tr.label: tr.track for tr in self._tracks if tr.label is not None}
        track_of.update((label, tr.track) for tr in self._tracks for label in tr.fragments)
        out = set()
        for a, b in pairs:
            ta, tb = track_of.get(int(a)), track_of.get(int(b))
            if ta is not None and tb is not None and ta != tb:
                out.add((ta, tb) if ta < tb else (tb, ta))
        return frozenset(out)


def _together(
    parts: list[int], xs: list[float], ys: list[float], areas: list[float]
) -> tuple[float, float, float]:
    """Centroid and area of several instances taken as one cell."""
    area = sum(areas[j] for j in parts)
    x = sum(xs[j] * areas[j] for j in parts) / area
    y = sum(ys[j] * areas[j] for j in parts) / area
    return x, y, area


@dataclass(frozen=True, slots=True)
class TrackRow:
    """One track at one frame, gaps filled: ``measured`` False on a filled frame."""

    t: int
    track: int
    x: float
    y: float
    area_px: float
    measured: bool
    parent: int | None = None


def track_rows(updates: Sequence[WellUpdate]) -> list[TrackRow]:
    """The measured rows of a tracker's updates, each track's gaps filled, by ``(t, track)``.

    A gap between two measured frames is filled by the minimum-velocity path (a straight
    line, :func:`~livecell.tracking.smoothing.fill_gaps`), the area by the same line;
    frames a track was held after its last measurement are dropped (the cell had gone).
    """
    measured: dict[int, list[TrackedCell]] = {}
    frames: dict[int, list[int]] = {}
    for update in updates:
        for cell in update.cells:
            if cell.measured:
                measured.setdefault(cell.track, []).append(cell)
                frames.setdefault(cell.track, []).append(update.t)
    rows: list[TrackRow] = []
    for track, cells in measured.items():
        ts = frames[track]
        parent = cells[0].parent
        if ts[-1] - ts[0] + 1 == len(ts):
            rows.extend(
                TrackRow(t, track, c.x, c.y, c.area_px, True, parent)
                for t, c in zip(ts, cells, strict=True)
            )
            continue
        span = np.full((ts[-1] - ts[0] + 1, 3), np.nan)
        offsets = np.array(ts) - ts[0]
        span[offsets] = [(c.x, c.y, c.area_px) for c in cells]
        filled = fill_gaps(span)
        seen = set(offsets.tolist())
        rows.extend(
            TrackRow(ts[0] + o, track, float(v[0]), float(v[1]), float(v[2]), o in seen, parent)
            for o, v in enumerate(filled)
        )
    rows.sort(key=lambda r: (r.t, r.track))
    return rows
