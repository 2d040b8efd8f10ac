"""Contacts between tracked cells over time, with one frame of hysteresis.

Owns :class:`ContactHysteresis`: fed each frame's touching pairs of track ids (from
:class:`livecell.tracking.nanowell.WellUpdate.contacts`), it reports when a contact
starts and when it ends. A pair missing for at most ``max_gap_frames`` frames (default
one) and seen again is the same contact; an end is reported once the pair has been
missing for longer, with ``end_t`` the last frame the pair was in contact (as in the
simulator's ``contacts.csv``).

And :class:`NewTrackHold`: what names a track that appeared mid-acquisition waits
until the track has lived ``min_frames`` frames, then goes out (with its own frame
numbers); if the track ends sooner it is dropped. A cut-off piece of a cell or a
speck of debris makes such a short-lived track, and it "touches" its neighbours.
Pure: no clocks, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Contact", "ContactChanges", "ContactHysteresis", "NewTrackHold"]

Item = TypeVar("Item")


@dataclass(frozen=True, slots=True)
class Contact:
    """One contact between tracks ``track_a < track_b``, frames ``start_t..end_t`` inclusive."""

    track_a: int
    track_b: int
    start_t: int
    end_t: int


@dataclass(frozen=True, slots=True)
class ContactChanges:
    """What changed at frame ``t``: pairs ``(a, b)``, ``a < b``, that started; contacts ended."""

    t: int
    started: tuple[tuple[int, int], ...] = ()
    ended: tuple[Contact, ...] = ()


@dataclass(slots=True)
class _Open:
    start_t: int
    last_t: int


@dataclass(slots=True)
class ContactHysteresis:
    """Contact starts and ends from per-frame touching pairs; one per well (or field)."""

    max_gap_frames: int = 1
    _open: dict[tuple[int, int], _Open] = field(default_factory=dict, init=False, repr=False)
    _t: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_gap_frames < 0:
            raise ValueError(f"max_gap_frames must be >= 0, got {self.max_gap_frames}")

    @property
    def open_pairs(self) -> frozenset[tuple[int, int]]:
        return frozenset(self._open)

    def update(self, pairs: Iterable[tuple[int, int]], t: int) -> ContactChanges:
        """This frame's touching pairs (either order); frames must increase."""
        if self._t is not None and t <= self._t:
            raise ValueError(f"frames must increase: {t} after {self._t}")
        self._t = t
        now = {(a, b) if a < b else (b, a) for a, b in pairs if a != b}
        started = []
        for pair in sorted(now):
            current = self._open.get(pair)
            if current is None:
                self._open[pair] = _Open(start_t=t, last_t=t)
                started.append(pair)
            else:
                current.last_t = t
        ended = []
        for pair in sorted(self._open):
            current = self._open[pair]
            if pair not in now and t - current.last_t > self.max_gap_frames:
                ended.append(Contact(*pair, current.start_t, current.last_t))
                del self._open[pair]
        return ContactChanges(t=t, started=tuple(started), ended=tuple(ended))

    def finish(self) -> tuple[Contact, ...]:
        """End every open contact at its last frame in contact (end of the acquisition)."""
        ended = tuple(Contact(*pair, o.start_t, o.last_t) for pair, o in sorted(self._open.items()))
        self._open.clear()
        return ended


@dataclass(slots=True)
class NewTrackHold(Generic[Item]):
    """Holds items naming a track younger than ``min_frames``; see the module docstring.

    Tracks are young only once :meth:`born` registers them (tracks present from the
    first frame never are); :meth:`ended` drops what a still-young track held.
    ``min_frames`` 0 or 1 holds nothing.
    """

    min_frames: int
    _born: dict[int, int] = field(default_factory=dict, init=False, repr=False)
    _held: list[tuple[tuple[int, ...], Item]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.min_frames < 0:
            raise ValueError(f"min_frames must be >= 0, got {self.min_frames}")

    def born(self, track: int, t: int) -> None:
        """``track`` appeared at frame ``t`` (after the acquisition's first frame)."""
        if self.min_frames > 1:
            self._born[track] = t

    def ended(self, track: int) -> None:
        """``track`` has ended: drop the items it held if it was still young."""
        if self._born.pop(track, None) is not None:
            self._held = [(tracks, item) for tracks, item in self._held if track not in tracks]

    def update(self, items: Iterable[tuple[tuple[int, ...], Item]], t: int) -> list[Item]:
        """Frame ``t``'s items, each with the tracks it names: the ones to send now, held
        ones that came of age first, in the order they came."""
        for track, born_t in list(self._born.items()):
            if t - born_t + 1 >= self.min_frames:
                del self._born[track]  # of age: no longer young
        self._held.extend(items)
        out: list[Item] = []
        kept: list[tuple[tuple[int, ...], Item]] = []
        for tracks, item in self._held:
            if any(track in self._born for track in tracks):
                kept.append((tracks, item))
            else:
                out.append(item)
        self._held = kept
        return out
