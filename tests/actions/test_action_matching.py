"""Which events fire an action: ``livecell.actions.matches`` over event records."""

from __future__ import annotations

from typing import Any

import pytest
from action_peers import death_event, frame_event
from hypothesis import given, settings
from hypothesis import strategies as st

from livecell.actions import matches
from livecell.config import ActionConfig
from livecell.events import KINDS


def action(**fields: Any) -> ActionConfig:
    return ActionConfig.model_validate({"kind": "death", "http": "http://127.0.0.1:1/", **fields})


CASES = [
    # (filters, record, fires)
    ({}, death_event(), True),
    ({}, frame_event(), False),
    ({"kind": "frame"}, frame_event(), True),
    ({"pathway": "apoptosis"}, death_event(), True),
    ({"pathway": "necroptosis"}, death_event(), False),
    ({"pathway": "necroptosis"}, death_event(pathway=None), False),
    ({"min_confidence": 0.95}, death_event(confidence=0.95), True),
    ({"min_confidence": 0.95}, death_event(confidence=0.949), False),
    ({"min_confidence": 0.5}, death_event(confidence=float("nan")), False),
    ({"min_confidence": 0.5}, death_event(confidence="0.9"), False),
    ({"min_confidence": 0.5}, death_event(confidence=True), False),
    ({"min_confidence": 0.0}, {k: v for k, v in death_event().items() if k != "confidence"}, False),
    ({"well": "r001c002"}, death_event(), True),
    ({"well": "r001c003"}, death_event(), False),
    ({"well": "r001c*"}, death_event(), True),
    ({"well": "r00[01]c00?"}, death_event(), True),
    ({"well": "r002*"}, death_event(), False),
    ({"well": "R001C002"}, death_event(), False),  # case-sensitive, like the ids
    ({"well": "r001c*"}, death_event(well=None, patch=[1, 2]), False),  # patch mode
    (
        {"pathway": "apoptosis", "min_confidence": 0.9, "well": "r001*"},
        death_event(),
        True,
    ),
    (
        {"pathway": "apoptosis", "min_confidence": 0.99, "well": "r001*"},
        death_event(),
        False,
    ),
    ({"kind": "early_necroptosis", "min_confidence": 0.5}, death_event(), False),
]


@pytest.mark.parametrize(("filters", "record", "fires"), CASES)
def test_table(filters: dict[str, Any], record: dict[str, Any], fires: bool) -> None:
    assert matches(action(**filters), record) is fires


records = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(KINDS),
        "confidence": st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-2, 2)),
        "pathway": st.sampled_from([None, "apoptosis", "necroptosis", "necrosis", "death"]),
        "well": st.one_of(st.none(), st.from_regex(r"r00[0-3]c00[0-3]", fullmatch=True)),
    }
)


@settings(max_examples=200, deadline=None)
@given(
    record=records,
    kind=st.sampled_from(KINDS),
    min_confidence=st.one_of(st.none(), st.floats(0, 1)),
    pathway=st.sampled_from([None, "apoptosis", "necrosis"]),
    well=st.sampled_from([None, "r001c002", "r00[12]c*", "*"]),
)
def test_a_match_passes_every_filter(
    record: dict[str, Any],
    kind: str,
    min_confidence: float | None,
    pathway: str | None,
    well: str | None,
) -> None:
    assert matches(action(kind=kind), record) is (record["kind"] == kind)
    # death events carry every field a filter reads (the config refuses a filter on a
    # field the kind never carries)
    rule = action(kind="death", min_confidence=min_confidence, pathway=pathway, well=well)
    fired = matches(rule, record)
    unfiltered = matches(action(kind="death"), record)
    if fired:
        assert unfiltered
        assert pathway is None or record["pathway"] == pathway
        assert min_confidence is None or record["confidence"] >= min_confidence
        assert well is None or isinstance(record["well"], str)
    if well == "*" and min_confidence is None and pathway is None:
        assert fired is (unfiltered and record["well"] is not None)
