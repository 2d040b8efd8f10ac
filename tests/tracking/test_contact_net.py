"""The bundled contact net on simulated frames: its calls against the simulator's truth."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import tifffile
from microscope import simulate_nanowell

from livecell.analysis.wells import WellLattice
from livecell.segmentation import UNetSegmenter
from livecell.segmentation.unet import normalise_crop
from livecell.tracking.contact_net import ContactNet, WellForContacts


@pytest.fixture(scope="module")
def acquisition(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seed 9 (no contact training or held-out seed): 10 frames of 4 x 4 wells."""
    return simulate_nanowell(tmp_path_factory.mktemp("contacts") / "nano9", seed=9, frames=10,
                             size_px=1024, wells=4)  # fmt: skip


@pytest.fixture(scope="module")
def wells(acquisition: Path) -> list[tuple[int, str, WellForContacts, np.ndarray]]:
    """Per frame and well: the net's input and the simulated labels under it."""
    lattice = WellLattice()
    out = []
    with UNetSegmenter.bundled(threads=1) as segmenter:
        for path in sorted((acquisition / "frames" / "Pos0").glob("t*.ome.tif")):
            t = int(path.name[1:6])
            image = tifffile.imread(path).astype(np.float32)
            truth = tifffile.imread(
                acquisition / "ground_truth" / "Pos0" / "TRA" / f"man_track{t:03d}.tif"
            )
            boxes = lattice.update(image, t)
            crops = [image[w.y0 : w.y1, w.x0 : w.x1] for w in boxes]
            for box, crop, (labels, foreground) in zip(
                boxes, crops, segmenter.segment_with_foreground(crops), strict=True
            ):
                well = WellForContacts(normalise_crop(crop), labels, foreground)
                out.append((t, box.well, well, truth[box.y0 : box.y1, box.x0 : box.x1]))
    return out


def covering(truth: np.ndarray, mask: np.ndarray) -> int:
    values, counts = np.unique(truth[mask], return_counts=True)
    counts = np.where(values == 0, 0, counts)
    return int(values[np.argmax(counts)]) if counts.max(initial=0) > 0 else -1


def test_the_bundled_net_calls_simulated_contacts(
    acquisition: Path, wells: list[tuple[int, str, WellForContacts, np.ndarray]]
) -> None:
    in_contact: dict[tuple[str, int], set[tuple[int, int]]] = defaultdict(set)
    with open(acquisition / "ground_truth" / "contacts.csv", newline="") as f:
        for row in csv.DictReader(f):
            pair = tuple(sorted((int(row["track_a"]), int(row["track_b"]))))
            for t in range(int(row["start_t"]), int(row["end_t"]) + 1):
                in_contact[(row["well"], t)].add(pair)  # type: ignore[arg-type]
    hits = called = touching = 0
    with ContactNet.bundled(threads=1) as net:
        for (t, well, w, truth), pairs in zip(
            wells, net.contact_pairs([w for _, _, w, _ in wells]), strict=True
        ):
            said = {tuple(p) for p in pairs.tolist()}
            for a, b in net.candidates(w).pairs.tolist():
                ta, tb = sorted(covering(truth, w.labels == v) for v in (a, b))
                if ta < 0 or ta == tb:
                    continue  # a fragment, or a label over no simulated cell
                really = (ta, tb) in in_contact[(well, t)]
                touching += really
                called += (a, b) in said
                hits += really and (a, b) in said
    assert touching >= 30, "too few contacts in the sample to judge"
    assert hits / called >= 0.9, (hits, called)  # precision
    assert hits / touching >= 0.9, (hits, touching)  # recall


def test_one_batch_calls_what_each_well_alone_would(
    wells: list[tuple[int, str, WellForContacts, np.ndarray]],
) -> None:
    frame = [w for _, _, w, _ in wells]  # every frame's wells in one batch
    with ContactNet.bundled(threads=1) as net:
        together = net.contact_pairs(frame)
        alone = [net.contact_pairs([w])[0] for w in frame]
        assert sum(len(p) for p in together) > 0
        assert [p.tolist() for p in together] == [p.tolist() for p in alone]
        empty = WellForContacts(np.zeros((50, 50), np.float32), np.zeros((50, 50), np.int32),
                                np.zeros((50, 50), np.float32))  # fmt: skip
        assert [p.shape for p in net.contact_pairs([empty, empty])] == [(0, 2), (0, 2)]
        assert net.contact_pairs([]) == []
