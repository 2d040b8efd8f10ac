"""Position and t from a file's path: the default rule and configured ones (SPEC 3.1)."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from livecell.config import DEFAULT_PATH_REGEX
from livecell.errors import RejectedFrame
from livecell.frames import FrameKey
from livecell.stream.paths import key_from_path

ROOT = Path("/data/exp1")
DEFAULT = re.compile(DEFAULT_PATH_REGEX)


def key(relpath: str, *, pattern: re.Pattern[str] = DEFAULT, acquisition: str = "") -> FrameKey:
    return key_from_path(ROOT / relpath, root=ROOT, pattern=pattern, acquisition=acquisition)


@pytest.mark.parametrize(
    ("relpath", "position", "t"),
    [
        ("Pos0/img_0005.tif", "Pos0", 5),
        ("Pos0/t00012.ome.tif", "Pos0", 12),  # the simulator's names
        ("A1-Site_3/img_t0007.tiff", "A1-Site_3", 7),  # digits in the folder do not count
        ("Pos1/img_t0003_z2.tif", "Pos1", 2),  # the LAST run of digits in the name
        ("Pos1/img_t0003_z2_ch10.tif", "Pos1", 10),
        ("plate/well B2/frame 42.tif", "well B2", 42),  # the parent, however deep
        ("Pos0/0.tif", "Pos0", 0),
        ("Pos0/img_000000000123.tif", "Pos0", 123),
        ("Pos 7/IMG_0001.TIF", "Pos 7", 1),
        ("t0009.tif", "exp1", 9),  # at the root: the watched folder is the position
    ],
)
def test_default_rule_parent_is_position_last_digits_are_t(
    relpath: str, position: str, t: int
) -> None:
    found = key(relpath)
    assert (found.position, found.t) == (position, t)


@pytest.mark.parametrize("relpath", ["Pos0/img.tif", "Pos0/notes.ome.tif", "Pos0/t-x.tif"])
def test_default_rule_without_digits_in_the_name_is_rejected(relpath: str) -> None:
    with pytest.raises(RejectedFrame) as caught:
        key(relpath)
    assert caught.value.reason == "no_position_t"
    assert Path(relpath).name in caught.value.detail


def test_absurdly_large_t_is_rejected_not_crashing_the_journal() -> None:
    with pytest.raises(RejectedFrame) as caught:
        key("Pos0/img_" + "9" * 30 + ".tif")
    assert caught.value.reason == "no_position_t"


def test_acquisition_is_the_watched_folder_unless_configured() -> None:
    assert key("Pos0/img_1.tif").acquisition == "exp1"
    assert key("t0009.tif").acquisition == "exp1"
    assert key("Pos0/img_1.tif", acquisition="screen-7").acquisition == "screen-7"
    assert key("day2/run1/Pos0/img_1.tif", acquisition="screen-7").acquisition == "screen-7"


@pytest.mark.parametrize(
    ("relpath", "acquisition"),
    [
        ("run1/Pos0/img_1.tif", "run1"),
        ("run2/Pos0/img_1.tif", "run2"),  # the same position and t, another experiment
        ("day2/run1/Pos0/img_1.tif", "day2/run1"),
        ("plate/well B2/frame 42.tif", "plate"),
    ],
)
def test_each_experiment_folder_under_the_root_is_its_own_acquisition(
    relpath: str, acquisition: str
) -> None:
    assert key(relpath).acquisition == acquisition


def test_configured_regex_with_acquisition_group() -> None:
    pattern = re.compile(r"(?P<acquisition>[^/]+)/(?P<position>[^/]+)_t(?P<t>\d+)_z\d+\.tif$")
    assert key("run3/A01_t0004_z2.tif", pattern=pattern, acquisition="ignored") == FrameKey(
        acquisition="run3", position="A01", t=4
    )
    with pytest.raises(RejectedFrame):
        key("run3/A01.tif", pattern=pattern)


NAME_CHARS = string.ascii_letters + "_- ."


@given(
    position=st.text(string.ascii_letters + string.digits + "_- ", min_size=1, max_size=12),
    prefix=st.text(NAME_CHARS, max_size=10),
    suffix=st.sampled_from([".tif", ".tiff", ".ome.tif", "_final.tif"]),
    t=st.integers(min_value=0, max_value=10**9),
    width=st.integers(min_value=1, max_value=12),
)
def test_default_rule_round_trips_any_position_and_t(
    position: str, prefix: str, suffix: str, t: int, width: int
) -> None:
    relpath = f"{position}/{prefix}{t:0{width}d}{suffix}"
    assert key(relpath) == FrameKey(acquisition="exp1", position=position, t=t)
