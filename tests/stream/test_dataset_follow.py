"""``DatasetFollower``: a finished dataset's reader is let go, and comes back if needed.

A daemon follows acquisition after acquisition for weeks; each open reader holds its
files and a record per image, so a finished one must not stay open.
"""

from __future__ import annotations

import shutil
import time
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


def test_a_crashed_dataset_is_let_go_when_idle_and_its_writer_coming_back_reopens_it(
    tmp_path: Path,
) -> None:
    """A writer that dies mid-acquisition never writes its end marker: live, its reader
    would hold the dataset's files for as long as the daemon runs."""
    root = tmp_path / "incoming"
    dataset = root / "acq1"
    shutil.copytree(SAMPLE, dataset)
    (stack,) = [p for p in dataset.iterdir() if p.suffix == ".tif"]
    whole = stack.read_bytes()
    with stack.open("r+b") as f:
        f.truncate(len(whole) * 6 // 10)  # the writer crashed mid-acquisition
    done: set[str] = set()
    idle_s = 0.5
    follower = DatasetFollower(
        SourceConfig(path=root), root, is_done=done.__contains__, idle_s=idle_s
    )
    assert follower.claims(dataset / "NDTiff.index")
    before: list[Frame] = []
    for _ in range(20):
        before += [item for item in follower.items() if isinstance(item, Frame)]
    assert before, "the part written before the crash has complete images"
    assert follower.following == [dataset], "not idle yet"
    done.update(str(f.path) for f in before)

    time.sleep(idle_s + 0.1)
    assert list(follower.items()) == []
    assert follower.following == []  # let go: its files are closed

    stack.write_bytes(whole)  # the writer came back and wrote the rest
    assert follower.claims(stack)
    after = _frames_of(follower)
    assert follower.following == []  # finished this time
    assert not {f.path for f in after} & done, "nothing is read twice"
    assert len(before) + len(after) == len(_frames_of_whole(tmp_path))
    follower.close()


def _frames_of_whole(tmp_path: Path) -> list[Frame]:
    root = tmp_path / "reference"
    shutil.copytree(SAMPLE, root / "acq1")
    follower = DatasetFollower(SourceConfig(path=root), root, is_done=lambda _: False)
    assert follower.claims(root / "acq1" / "NDTiff.index")
    frames = _frames_of(follower)
    follower.close()
    return frames
