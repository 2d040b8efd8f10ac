"""The demo's terminal rows, progress line and summary, from event records."""

from __future__ import annotations

from pathlib import Path

from livecell.demo.view import (
    DemoSummary,
    event_line,
    header_line,
    latency_text,
    percentile,
    progress_line,
    summary_lines,
    tracks_text,
)

BASE = {
    "event_id": "x",
    "acquisition": "frames",
    "position": "Pos0",
    "t": 17,
    "emitted_at": 1_700_000_000.0,
    "latency_s": 0.3141,
}


def test_death_row_has_every_column() -> None:
    record = {
        **BASE,
        "kind": "death",
        "well": "r002c001",
        "track": 22,
        "pathway": "necrosis",
        "onset_t": 9,
        "confidence": 0.996,
    }
    line = event_line(record)
    assert line is not None
    assert "\x1b[" not in line
    for part in ("17", "Pos0", "r002c001", "22", "DEATH: necrosis from t=9 (p 1.00)", "0.31 s"):
        assert part in line
    assert line.index("Pos0") < line.index("r002c001") < line.index("DEATH") < line.index("0.31")


def test_rows_line_up_with_the_header() -> None:
    header = header_line()
    line = event_line({**BASE, "kind": "contact_start", "well": "r000c001", "tracks": [4, 25]})
    assert line is not None
    assert line.index("r000c001") == header.index("well")
    assert line.index("4+25") == header.index("track(s)")
    assert len(line) == len(header)


def test_each_shown_kind_says_what_happened() -> None:
    cases: dict[str, tuple[dict[str, object], str]] = {
        "cell_type": ({"cell_type": "effector", "confidence": 0.98, "track": 3}, "effector"),
        "early_necroptosis": ({"onset_t": 4, "confidence": 0.6, "track": 3}, "early necroptosis"),
        "contact_end": ({"tracks": [1, 2]}, "contact ends"),
        "rejected": ({"reason": "truncated", "path": "/x.tif"}, "file rejected: truncated"),
    }
    for kind, (fields, words) in cases.items():
        line = event_line({**BASE, "kind": kind, **fields})
        assert line is not None, kind
        assert words in line, kind


def test_frame_and_other_kinds_are_not_rows() -> None:
    assert event_line({**BASE, "kind": "frame", "shape": [8, 8]}) is None
    assert event_line({**BASE, "kind": "patch_states"}) is None


def test_colour_only_when_asked() -> None:
    record = {**BASE, "kind": "death", "well": "r0", "track": 1, "pathway": "apoptosis"}
    coloured = event_line(record, colour=True)
    assert coloured is not None
    assert "\x1b[1;31m" in coloured
    assert coloured.endswith("0.31 s")
    assert "\x1b[" not in progress_line(3, 40, 0.2, 0.5)
    assert "\x1b[" in progress_line(3, 40, 0.2, 0.5, colour=True)


def test_missing_fields_show_a_dash() -> None:
    line = event_line({"kind": "contact_start"})
    assert line is not None
    assert line.startswith("-")
    assert tracks_text({"track": 7}) == "7"
    assert tracks_text({}) == "-"


def test_progress_line() -> None:
    assert progress_line(12, 40, None, 0.5) == "frames 12/40 analysed"
    assert progress_line(12, 40, 0.314, 0.5) == (
        "frames 12/40 analysed, last frame 0.31 s after it was written (interval 0.50 s)"
    )


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([0.0, 10.0], 99) == 9.9


def test_latency_against_the_interval() -> None:
    assert "p99 within it" in latency_text([0.1, 0.2, 0.3], 0.5)
    assert "over it" in latency_text([0.1, 0.2, 3.0], 0.5)
    assert latency_text([], 0.5) == "no frames analysed"


def test_summary_names_the_files_and_the_evaluate_command(tmp_path: Path) -> None:
    out = tmp_path / "demo out"
    summary = DemoSummary(
        frames_expected=40,
        frames_done=38,
        events_by_kind={"frame": 38, "death": 2},
        latencies_s=(0.2, 0.3),
        interval_s=0.5,
        out_dir=out,
        events_path=out / "events.jsonl",
        tracks_path=out / "tracks.csv",
        ground_truth=out / "ground_truth",
        stopped_early=True,
        problems=("the simulator exited with status 1",),
    )
    text = "\n".join(summary_lines(summary))
    assert text.startswith("livecell demo stopped early:")
    assert "38 of 40 analysed" in text
    assert "death 2, frame 38" in text
    assert f"livecell evaluate '{out}/ground_truth' --events '{out}/events.jsonl'" in text
    assert "problem       the simulator exited with status 1" in text
