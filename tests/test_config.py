"""The configuration model (SPEC section 2): defaults, strictness, paths, round trip."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livecell.config import Config, config_from_dict, load_config, split_address
from livecell.errors import ConfigError

WATCH = {"source": {"path": "incoming"}}


def make(raw: dict[str, Any], base_dir: Path = Path("/lab/run1")) -> Config:
    return config_from_dict(raw, base_dir=base_dir)


def config_error(raw: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        make(raw)
    return caught.value


def test_defaults_fill_every_key_but_the_source() -> None:
    config = make(WATCH)
    base = Path("/lab/run1")
    assert config.state_dir == base / "state"
    source = config.source
    assert source.kind == "watch"
    assert source.path == base / "incoming"
    assert source.patterns == ("*.tif", "*.tiff")
    assert source.polling is False
    assert source.settle_s == 1.0
    assert source.axes == "YX"
    assert source.endpoint == "tcp://127.0.0.1:5555"
    assert source.socket == "pull"
    assert source.bind is True
    assert config.analysis.mode == "none"
    assert config.engine.backend == "auto"
    assert config.engine.model == ""
    assert config.sinks.events == base / "events.jsonl"
    assert config.sinks.tracks == base / "tracks.csv"
    assert config.sinks.zmq_pub == ""
    assert config.metrics.address == "127.0.0.1:9108"
    assert config.dashboard.address == ""


def test_zmq_source_needs_no_path() -> None:
    config = make({"source": {"kind": "zmq"}})
    assert config.source.path is None
    assert config.source.endpoint.startswith("tcp://127.0.0.1:")


def test_watch_source_needs_a_path() -> None:
    error = config_error({})
    assert error.key == "source.path"
    assert "required" in error.message


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"source": {"path": "x", "setle_s": 1.0}}, "source.setle_s"),
        ({"source": {"path": "x"}, "stat_dir": "state"}, "stat_dir"),
        ({"source": {"path": "x"}, "sink": {"events": "e.jsonl"}}, "sink"),
        ({"source": {"path": "x"}, "metrics": {"adress": "127.0.0.1:1"}}, "metrics.adress"),
    ],
)
def test_unknown_keys_are_rejected_by_name(raw: dict[str, Any], key: str) -> None:
    error = config_error(raw)
    assert error.key == key
    assert "unknown key" in error.message
    assert key in str(error)


@pytest.mark.parametrize(
    ("raw", "key", "says"),
    [
        ({"source": {"path": "x", "settle_s": -1}}, "source.settle_s", "-1"),
        ({"source": {"path": "x", "settle_s": "fast"}}, "source.settle_s", "fast"),
        ({"source": {"path": "x", "kind": "ftp"}}, "source.kind", "ftp"),
        ({"source": {"path": "x", "axes": "XY"}}, "source.axes", "XY"),
        ({"source": {"path": "x", "socket": "req"}}, "source.socket", "req"),
        ({"source": {"path": "x", "format": "czi"}}, "source.format", "czi"),
        ({"source": {"path": "x", "tcf_view": "3d"}}, "source.tcf_view", "3d"),
        ({"source": {"path": "x", "patterns": []}}, "source.patterns", "at least one"),
        ({"source": {"path": "x", "path_regex": r"(?P<t>\d+)"}}, "source.path_regex", "position"),
        ({"source": {"path": "x", "path_regex": "(unclosed"}}, "source.path_regex", "regular"),
        ({"source": 5}, "source", "5"),
        ({**WATCH, "metrics": {"address": "localhost"}}, "metrics.address", "host:port"),
        ({**WATCH, "dashboard": {"address": "h:99999"}}, "dashboard.address", "host:port"),
        ({**WATCH, "analysis": {"mode": "cells"}}, "analysis.mode", "cells"),
        ({**WATCH, "engine": {"backend": "cuda"}}, "engine.backend", "cuda"),
        ({**WATCH, "pipeline": {"queue_size": 0}}, "pipeline.queue_size", "0"),
        ({**WATCH, "nanowell": {"contact_rule": "cnn"}}, "nanowell.contact_rule", "cnn"),
        ({"source": {"kind": "zmq", "endpoint": "garbage"}}, "source.endpoint", "garbage"),
        ({"source": {"kind": "zmq", "endpoint": "tcp://h"}}, "source.endpoint", "tcp://h"),
        ({**WATCH, "sinks": {"zmq_pub": "127.0.0.1:5556"}}, "sinks.zmq_pub", "ZeroMQ endpoint"),
        ({**WATCH, "sinks": {"events": ""}}, "sinks.events", "file name"),
    ],
)
def test_bad_values_are_rejected_by_name(raw: dict[str, Any], key: str, says: str) -> None:
    error = config_error(raw)
    assert error.key == key
    assert says in error.message


@pytest.mark.parametrize(
    "endpoint",
    ["tcp://127.0.0.1:5555", "tcp://*:5555", "tcp://localhost:*", "tcp://[::1]:5", "ipc:///tmp/x"],
)
def test_zmq_endpoints_in_their_usual_forms_are_accepted(endpoint: str) -> None:
    config = config_from_dict(
        {"source": {"kind": "zmq", "endpoint": endpoint}, "sinks": {"zmq_pub": endpoint}},
        base_dir=Path("/tmp"),
    )
    assert config.source.endpoint == config.sinks.zmq_pub == endpoint


def test_a_command_action_given_by_relative_path_is_the_config_folders(tmp_path: Path) -> None:
    config_file = tmp_path / "livecell.toml"
    config_file.write_text(
        '[source]\npath = "incoming"\n'
        '[[actions]]\nkind = "death"\ncommand = ["./hooks/notify.sh", "--loud"]\n'
        '[[actions]]\nkind = "death"\ncommand = ["python3", "-c", "pass"]\n'
        '[[actions]]\nkind = "death"\ncommand = ["/usr/bin/env", "true"]\n'
    )
    relative, bare, absolute = (a.command for a in load_config(config_file).actions)
    assert relative == (str(tmp_path / "hooks" / "notify.sh"), "--loud")
    assert bare == ("python3", "-c", "pass"), "a bare name is still looked up on PATH"
    assert absolute == ("/usr/bin/env", "true")


def test_relative_paths_are_relative_to_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    config_file = folder / "livecell.toml"
    config_file.write_text(
        'state_dir = "var/state"\n'
        '[source]\npath = "../incoming"\n'
        '[sinks]\nevents = "out/events.jsonl"\ntracks = "/abs/tracks.csv"\n'
        '[patches]\nmodel = "models/holotomo"\n'
        '[nanowell]\ncontact_model = "models/contact"\n'
        '[engine]\nmodel = "models/engine"\n'
    )
    config = load_config(config_file)
    assert config.patches.model == folder / "models" / "holotomo"
    assert config.engine.model == str(folder / "models" / "engine")
    assert config.nanowell.contact_model == folder / "models" / "contact"
    assert config.state_dir == folder / "var" / "state"
    assert config.source.path == tmp_path / "incoming"
    assert config.sinks.events == folder / "out" / "events.jsonl"
    assert config.sinks.tracks == Path("/abs/tracks.csv")


def test_home_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = make({"source": {"path": "~/incoming"}})
    assert config.source.path == tmp_path / "incoming"


def test_empty_tracks_turns_the_tracks_file_off() -> None:
    assert make({**WATCH, "sinks": {"tracks": ""}}).sinks.tracks is None


def test_overrides_apply_on_top_of_the_file(tmp_path: Path) -> None:
    config_file = tmp_path / "c.toml"
    config_file.write_text('[source]\npath = "a"\nsettle_s = 2.0\n')
    config = load_config(config_file, overrides={"source": {"path": "/data/b"}})
    assert config.source.path == Path("/data/b")
    assert config.source.settle_s == 2.0


@pytest.mark.parametrize(
    ("content", "says"),
    [(None, "not found"), ("[source\npath = 'x'", "not valid TOML"), (b"\xff\xfe", "cannot read")],
)
def test_unreadable_files_are_config_errors(
    tmp_path: Path, content: str | bytes | None, says: str
) -> None:
    config_file = tmp_path / "c.toml"
    if isinstance(content, bytes):
        config_file.write_bytes(content)
    elif content is not None:
        config_file.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_config(config_file)
    assert says in str(caught.value)


def round_trip(config: Config, base_dir: Path) -> Config:
    return config_from_dict(tomllib.loads(config.to_toml()), base_dir=base_dir)


def test_resolved_toml_round_trips() -> None:
    config = make(
        {
            "source": {"kind": "zmq", "endpoint": "tcp://127.0.0.1:7000", "bind": False},
            "sinks": {"tracks": "", "zmq_pub": "tcp://127.0.0.1:7001"},
            "metrics": {"address": ""},
        }
    )
    assert round_trip(config, Path("/elsewhere")) == config
    assert set(tomllib.loads(config.to_toml())) == set(Config.model_fields)


@settings(max_examples=60, deadline=None)
@given(
    name=st.text(max_size=20),
    folder=st.text(st.characters(exclude_characters="/\0"), min_size=1, max_size=20),
    settle_s=st.floats(min_value=0, max_value=3600, allow_nan=False),
)
def test_any_resolved_config_round_trips(name: str, folder: str, settle_s: float) -> None:
    """check-config's output parses back to the same config, whatever the strings hold."""
    config = make(
        {"source": {"path": f"/data/{folder}", "acquisition": name, "settle_s": settle_s}}
    )
    assert round_trip(config, Path("/elsewhere")) == config


def test_split_address_takes_an_ipv6_host_in_brackets() -> None:
    assert split_address("127.0.0.1:9108") == ("127.0.0.1", 9108)
    assert split_address("[::1]:9108") == ("::1", 9108)
