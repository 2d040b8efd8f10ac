"""``DatasetFollower``: a finished dataset's reader is let go, and comes back if needed.

A daemon follows acquisition after acquisition for weeks; each open reader holds its
files and a record per image, so a finished one must not stay open.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from livecell.config import SourceConfig
from livecell.frames import Frame
from livecell.stream.dataset_follow import DatasetFollower

SAMPLE = Path(__file__).parents[1] / "data" / "ndtiff" / "v3" / "ndtiff3.2_multichannel"


def test_a_finished_dataset_is_let_go_and_a_file_seen_again_reopens_it(tmp_path: Path) -> None:
    root = tmp_path / "incoming"
    dataset = root / "acq1"
    shutil.copytree(SAMPLE, dataset)
    done: set[str] = set()
    follower = DatasetFollower(SourceConfig(path=root), root, is_done=done.__contains__)
    index = dataset / "NDTiff.index"
    assert follower.claims(index)
    assert follower.following == [dataset]
    frames: list[Frame] = []
    for _ in range(100):
        frames += [item for item in follower.items() if isinstance(item, Frame)]
        if not follower.following:
            break
    assert frames, "the sample has images"
    assert follower.following == []  # finished, read to the end: its reader is closed
    done.update(str(f.path) for f in frames)

    assert follower.claims(index)  # the instrument touched it again: followed afresh
    again = [item for _ in range(3) for item in follower.items()]
    assert again == []  # every image already done (the journal's answer)
    assert follower.following == []
    follower.close()


def _frames_of(follower: DatasetFollower) -> list[Frame]:
    frames: list[Frame] = []
    for _ in range(100):
        frames += [item for item in follower.items() if isinstance(item, Frame)]
        if not follower.following:
            return frames
    raise AssertionError("the datasets never finished")


def test_datasets_of_one_name_in_two_folders_are_two_acquisitions(tmp_path: Path) -> None:
    """A data root with a folder per day repeats dataset names: they were one acquisition,
    and the second day's images duplicates of the first's."""
    root = tmp_path / "incoming"
    for day in ("day1", "day2"):
        shutil.copytree(SAMPLE, root / day / "exp")
    shutil.copytree(SAMPLE, root / "exp")
    follower = DatasetFollower(SourceConfig(path=root), root, is_done=lambda _: False)
    for folder in (root / "day1" / "exp", root / "day2" / "exp", root / "exp"):
        assert follower.claims(folder / "NDTiff.index")
    frames = _frames_of(follower)
    per_acquisition = {
        name: sorted((f.key.position, f.key.t) for f in frames if f.key.acquisition == name)
        for name in {f.key.acquisition for f in frames}
    }
    assert sorted(per_acquisition) == ["day1/exp", "day2/exp", "exp"]
    assert per_acquisition["day1/exp"] == per_acquisition["day2/exp"] == per_acquisition["exp"]
    follower.close()


def test_a_replay_reports_a_dataset_cut_short_instead_of_losing_its_images_silently(
    tmp_path: Path,
) -> None:
    root = tmp_path / "incoming"
    whole, cut = root / "whole", root / "cut"
    shutil.copytree(SAMPLE, whole)
    shutil.copytree(SAMPLE, cut)
    (stack,) = [p for p in cut.iterdir() if p.suffix == ".tif"]
    with stack.open("r+b") as f:
        f.truncate(stack.stat().st_size * 6 // 10)  # the writer crashed mid-acquisition
    follower = DatasetFollower(SourceConfig(path=root), root, is_done=lambda _: False)
    for dataset in (whole, cut):
        assert follower.claims(dataset / "NDTiff.index")
    for _ in range(20):
        list(follower.items())
    (rejection,) = follower.unfinished()
    assert rejection.reason == "unfinished-dataset"
    assert rejection.path == f"{cut}#unfinished"
    assert "never completed" in rejection.detail
    follower.close()
