"""The dashboard's memory: states from events, timelines, and every bound holding."""

from __future__ import annotations

from typing import Any

import numpy as np

from livecell.dashboard.store import Limits, Store, compact
from livecell.dashboard.views import FrameView, TrackPoint, ViewParts, WellView


def _record(kind: str, t: int, **fields: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "acquisition": "a",
        "position": "Pos0",
        "t": t,
        "emitted_at": 100.0 + t,
        "latency_s": 0.25,
        **fields,
    }


def _view(t: int, tracks: tuple[int, ...]) -> ViewParts:
    image = np.zeros((64, 64), np.uint8)
    well = WellView("r000c000", (0, 0, 32, 32), (0.0, 0.0, 0.5, 0.5), tracks, ())
    view = FrameView("a", "Pos0", t, image, 1.0, (64, 64), (well,))
    points = tuple(TrackPoint(tr, "r000c000", t, 10.0, 10.0, 0.1 * t) for tr in tracks)
    crops = tuple((tr, np.full((48, 48), t, np.uint8)) for tr in tracks)
    return ViewParts(view, points, crops, None)


def _well(store: Store) -> dict[str, Any]:
    (position,) = store.state()["positions"]
    (well,) = position["wells"]
    assert isinstance(well, dict)
    return well


def test_a_well_goes_live_contact_death_and_its_timeline_says_when() -> None:
    store = Store(Limits(), mode="nanowell", backend="onnxruntime")
    for t in range(6):
        store.add_view(_view(t, (1, 2)))
        store.add_record(_record("frame", t))
    assert _well(store)["state"] == "live"
    store.add_record(_record("contact_start", 2, well="r000c000", tracks=[1, 2]))
    assert _well(store)["state"] == "contact"
    store.add_record(_record("contact_end", 4, well="r000c000", tracks=[1, 2]))
    assert _well(store)["state"] == "live"
    store.add_record(_record("early_necroptosis", 5, well="r000c000", track=2, onset_t=3))
    assert _well(store)["state"] == "early_necroptosis"
    store.add_record(
        _record("death", 5, well="r000c000", track=2, onset_t=4, pathway="necroptosis")
    )
    well = _well(store)
    assert well["state"] == "death"
    assert well["deaths"] == [{"track": 2, "pathway": "necroptosis", "onset_t": 4}]

    timeline = store.well_timeline("Pos0", "r000c000", 2)
    assert timeline is not None
    (track,) = timeline["tracks"]
    states = [p["state"] for p in track["points"]]
    assert states == ["live", "live", "contact", "early_necroptosis", "death", "death"]
    assert [p["p_death"] for p in track["points"]][:2] == [0.0, 0.1]
    assert all(p["crop"] for p in track["points"])
    assert timeline["contacts"] == [{"tracks": [1, 2], "start_t": 2, "end_t": 4}]
    assert store.crop(("crop", "Pos0", 2, 3)) is not None

    header = store.state()["header"]
    assert header["frames_done"] == 6
    assert header["latency_p50_s"] == 0.25
    assert header["interval_s"] == 1.0


def test_the_next_acquisition_at_a_position_starts_it_afresh() -> None:
    """Its track ids start again from the first: the last acquisition's deaths must not
    show on the new one's cells."""
    store = Store(Limits(), mode="nanowell", backend="x")
    store.add_view(_view(0, (1,)))
    store.add_record(_record("frame", 0))
    store.add_record(_record("death", 0, well="r000c000", track=1, onset_t=0))
    assert _well(store)["state"] == "death"
    store.add_record(_record("frame", 1))  # the same acquisition: kept
    assert _well(store)["state"] == "death"

    store.add_record({**_record("frame", 0), "acquisition": "b"})
    (position,) = store.state()["positions"]
    assert position["acquisition"] == "b"
    assert "wells" not in position  # no view of "b" yet, and nothing of "a" kept
    timeline = store.well_timeline("Pos0", "r000c000", None)
    assert timeline is not None
    assert timeline["tracks"] == []


def test_the_feed_history_is_bounded_and_frames_keep_only_the_latest() -> None:
    store = Store(Limits(feed_events=5), mode="nanowell", backend="x")
    for t in range(20):
        store.add_record(_record("frame", t))
        store.add_record(_record("cell_type", t, well="r000c000", track=t, cell_type="target"))
    history = store.history()
    assert [m["kind"] for m in history].count("cell_type") == 5
    assert [m["t"] for m in history if m["kind"] == "frame"] == [19]
    assert [m["seq"] for m in history] == sorted(m["seq"] for m in history)


def test_seeded_events_set_states_but_count_no_frames() -> None:
    store = Store(Limits(), mode="nanowell", backend="x")
    store.add_record(_record("frame", 0), seeded=True)
    store.add_record(_record("death", 0, well="r001c001", track=7, onset_t=0), seeded=True)
    assert store.state()["header"]["frames_done"] == 0
    assert _well(store)["state"] == "death"


def test_crops_tracks_and_points_stay_within_their_limits() -> None:
    limits = Limits(tracks=3, track_points=4, image_bytes=10 * 48 * 48)
    store = Store(limits, mode="nanowell", backend="x")
    for t in range(12):
        store.add_view(_view(t, (t, t + 100)))  # new tracks every frame
    timeline = store.well_timeline("Pos0", "r000c000", None)
    assert timeline is not None
    with_points = [tr for tr in timeline["tracks"] if tr["points"]]
    assert len(with_points) <= 3
    assert store._images.nbytes <= 10 * 48 * 48
    assert store.crop(("crop", "Pos0", 0, 0)) is None  # the oldest went first
    assert store.crop(("crop", "Pos0", 111, 11)) is not None
    store.add_view(_view(12, (5,)))
    for t in range(13, 20):
        store.add_view(_view(t, (5,)))
    timeline = store.well_timeline("Pos0", "r000c000", 5)
    assert timeline is not None
    assert len(timeline["tracks"][0]["points"]) == 4


def test_contacts_beyond_the_limit_are_forgotten_by_track_too() -> None:
    store = Store(Limits(contacts=4), mode="nanowell", backend="x")
    for t in range(10):  # pairs (t, t + 100); the last stays open
        store.add_record(_record("contact_start", t, well="r000c000", tracks=[t, t + 100]))
        if t < 9:
            store.add_record(_record("contact_end", t + 1, well="r000c000", tracks=[t, t + 100]))
    position = store._positions["Pos0"]
    kept = [c.tracks for c in position.contacts]
    assert kept == [(6, 106), (7, 107), (8, 108), (9, 109)]
    assert sorted(position.contacts_of) == [6, 7, 8, 9, 106, 107, 108, 109]
    assert position.track_state(9) == position.track_state(109) == "contact"
    assert position.track_state(8) == "live"
    assert position.track_state(8, t=8) == "contact"
    assert position.track_state(1, t=1) == "live"  # forgotten


def test_patch_states_make_a_patch_timeline() -> None:
    store = Store(Limits(), mode="patches", backend="x")
    classes = ["live_control", "apoptosis"]
    for t, states in enumerate([[[0, -1]], [[1, 0]]]):
        store.add_record(
            _record(
                "patch_states",
                t,
                classes=classes,
                patch_size=160,
                grid=[1, 2],
                states=states,
                counts={},
            )
        )
    store.add_record(_record("death", 1, patch=[0, 0], onset_t=1, pathway="apoptosis"))
    timeline = store.patch_timeline("Pos0", 0, 0)
    assert timeline is not None
    assert [p["state"] for p in timeline["points"]] == ["live_control", "apoptosis"]
    assert timeline["events"]["death"]["pathway"] == "apoptosis"
    patches = store.state()["positions"][0]["patches"]
    assert patches["states"] == [[1, 0]]
    assert patches["events"] == [{"patch": [0, 0], "kind": "death", "pathway": "apoptosis"}]


def test_compact_leaves_out_bulky_fields_but_keeps_a_rejections_path() -> None:
    assert "path" not in compact({"kind": "frame", "path": "/x", "crc32": 1})
    assert "states" not in compact({"kind": "patch_states", "states": [[0]]})
    assert compact({"kind": "rejected", "path": "/x"})["path"] == "/x"
