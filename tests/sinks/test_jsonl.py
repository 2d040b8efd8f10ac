"""The JSON Lines events file: append, fsync, one writer, torn tail repaired, ids_after."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livecell.sinks import EventLog, EventLogLocked


def record(n: int, **extra: Any) -> dict[str, Any]:
    return {"event_id": f"id{n:04d}", "kind": "frame", "t": n, **extra}


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_append_and_sync(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "events.jsonl"
    log = EventLog(path)
    log.append([record(0), record(1)])
    size = log.sync()
    log.append([])
    assert log.sync() == size == path.stat().st_size
    log.close()
    log.close()  # closing twice is harmless
    assert lines(path) == [record(0), record(1)]
    assert path.read_bytes().endswith(b"\n")


def test_appends_after_existing_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    first = EventLog(path)
    first.append([record(0)])
    first.close()
    second = EventLog(path)
    assert second.repaired_bytes == 0
    second.append([record(1)])
    second.close()
    assert lines(path) == [record(0), record(1)]


def test_nan_is_refused_not_written(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl")
    with pytest.raises(ValueError, match="JSON"):
        log.append([record(0, confidence=float("nan"))])
    log.close()
    assert (tmp_path / "events.jsonl").read_bytes() == b""


@pytest.mark.parametrize("torn", [b'{"event_id": "id0002", "ki', b"{", b"x" * 200_000])
def test_torn_last_line_is_cut_on_open(tmp_path: Path, torn: bytes) -> None:
    path = tmp_path / "events.jsonl"
    good = b"".join(json.dumps(record(n)).encode() + b"\n" for n in range(2))
    path.write_bytes(good + torn)
    log = EventLog(path)
    assert log.repaired_bytes == len(torn)
    assert path.read_bytes() == good
    log.append([record(2)])
    log.close()
    assert lines(path) == [record(0), record(1), record(2)]


def test_file_that_is_only_a_torn_line_becomes_empty(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"y" * 70_000)  # longer than one read-back chunk
    log = EventLog(path)
    assert log.repaired_bytes == 70_000
    assert log.size() == 0
    log.close()


@settings(max_examples=50, deadline=None)
@given(count=st.integers(1, 20), cut=st.floats(0, 1))
def test_any_crash_point_leaves_whole_lines(tmp_path_factory: Any, count: int, cut: float) -> None:
    """A file cut at any byte reopens as the complete lines before the cut."""
    path = tmp_path_factory.mktemp("cut") / "events.jsonl"
    log = EventLog(path)
    log.append([record(n, note="é" * n) for n in range(count)])
    log.close()
    data = path.read_bytes()
    keep = int(len(data) * cut)
    path.write_bytes(data[:keep])
    whole = data[:keep].count(b"\n")
    log = EventLog(path)
    assert list(log.ids_after(0)) == [f"id{n:04d}" for n in range(whole)]
    log.close()
    assert path.read_bytes() == b"".join(data.splitlines(keepends=True)[:whole])


def test_ids_after_an_offset(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl")
    log.append([record(0), record(1)])
    offset = log.sync()
    log.append([record(2), record(3)])
    end = log.sync()
    assert list(log.ids_after(0)) == ["id0000", "id0001", "id0002", "id0003"]
    assert list(log.ids_after(offset)) == ["id0002", "id0003"]
    assert list(log.ids_after(end)) == []
    assert list(log.ids_after(end + 100)) == list(log.ids_after(0)), "a shrunk file is read whole"
    log.close()


def test_ids_after_skips_lines_that_are_not_events(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"event_id": "a"}\nnot json\n[1, 2]\n{"event_id": 5}\n{"event_id": "b"}\n')
    log = EventLog(path)
    assert list(log.ids_after(0)) == ["a", "b"]
    log.close()


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    first = EventLog(path)
    with pytest.raises(EventLogLocked, match=r"events\.jsonl"):
        EventLog(path)
    first.close()
    EventLog(path).close()  # free again once the first is closed


def test_a_writer_in_another_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    log.append([record(0)])
    log.sync()
    code = (
        "import sys; from pathlib import Path\n"
        "from livecell.sinks import EventLog, EventLogLocked\n"
        "try:\n    EventLog(Path(sys.argv[1]))\n"
        "except EventLogLocked:\n    sys.exit(3)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(path)], timeout=60)
    assert result.returncode == 3
    log.close()
    assert lines(path) == [record(0)], "the refused writer must not touch the file"
