"""CTC results from tracker updates: segments at gaps, daughters naming their parent."""

from __future__ import annotations

import tracemalloc

import numpy as np

from livecell.tracking.ctc import CtcTrack, ctc_result, format_res_track, relabel
from livecell.tracking.nanowell import TrackedCell, WellUpdate


def cell(track: int, label: int | None, parent: int | None = None) -> TrackedCell:
    return TrackedCell(track, label, 0.0, 0.0, 10.0, label is not None, parent)


def test_a_gap_starts_a_new_segment_whose_parent_is_the_old_one_and_daughters_name_theirs() -> None:
    updates = [
        WellUpdate(0, (cell(1, 5), cell(2, 6))),
        WellUpdate(1, (cell(1, None), cell(2, 6))),
        WellUpdate(2, (cell(1, 3), cell(3, 7, parent=2), cell(4, 8, parent=2))),
        WellUpdate(3, (cell(1, 3), cell(3, 1, parent=2), cell(4, 2, parent=2))),
    ]
    result = ctc_result(updates)
    assert result.tracks == (
        CtcTrack(1, 0, 0, 0),
        CtcTrack(2, 0, 1, 0),
        CtcTrack(3, 2, 3, 1),
        CtcTrack(4, 2, 3, 2),
        CtcTrack(5, 2, 3, 2),
    )
    assert result.label_maps[2] == {3: 3, 7: 4, 8: 5}
    assert result.label_maps[3] == {3: 3, 1: 4, 2: 5}
    assert format_res_track(result.tracks[:2]) == "1 0 0 0\n2 0 1 0\n"


def test_relabel_maps_instances_and_clears_the_unmapped() -> None:
    labels = np.array([[0, 4, 4], [9, 9, 2]], np.int32)
    out = relabel(labels, {4: 1, 9: 300})
    assert out.dtype == np.uint16
    assert out.tolist() == [[0, 1, 1], [300, 300, 0]]


def test_relabel_of_huge_sparse_labels_needs_no_table_the_size_of_the_largest() -> None:
    labels = np.array([[0, 2**31 - 1, 5], [5, 2**31 - 1, 7]], np.int64)
    tracemalloc.start()
    try:
        out = relabel(labels, {2**31 - 1: 1, 5: 2})
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < 1 << 20, f"{peak_bytes} bytes to relabel 6 pixels"
    assert out.dtype == np.uint16
    assert out.tolist() == [[0, 1, 2], [2, 1, 0]]
