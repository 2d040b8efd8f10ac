"""``[[actions]]`` in the config: exactly one target, strict types, a resolved config
that round-trips through ``check-config``."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from livecell.config import Config, config_from_dict, load_config
from livecell.errors import ConfigError

BASE = '[source]\npath = "incoming"\n'


def load(tmp_path: Path, actions: str) -> Config:
    path = tmp_path / "livecell.toml"
    path.write_text(BASE + actions)
    return load_config(path)


def test_three_kinds_with_defaults(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        '[[actions]]\nkind = "death"\nzmq = "tcp://127.0.0.1:5560"\n'
        '[[actions]]\nkind = "death"\npathway = "necroptosis"\nmin_confidence = 1\n'
        'well = "r001c*"\nhttp = "https://scope.lab/trigger"\ntimeout_s = 2\n'
        '[[actions]]\nkind = "early_necroptosis"\ncommand = ["notify-send", "livecell"]\n'
        "retries = 0\nbackoff_s = 0\nqueue_size = 1\n",
    )
    zmq, http, command = config.actions
    assert (zmq.target, http.target, command.target) == ("zmq", "http", "command")
    assert (zmq.timeout_s, zmq.retries, zmq.backoff_s, zmq.queue_size) == (5.0, 3, 0.5, 256)
    assert (http.min_confidence, http.well, http.timeout_s) == (1.0, "r001c*", 2.0)
    assert (command.command, command.retries) == (("notify-send", "livecell"), 0)


def test_no_actions_by_default(tmp_path: Path) -> None:
    assert load(tmp_path, "").actions == ()


HTTP = '[[actions]]\nkind = "death"\nhttp = "http://a/"\n'


@pytest.mark.parametrize(
    ("actions", "key", "says"),
    [
        ('[[actions]]\nkind = "death"\n', "actions.0", "exactly one target"),
        (HTTP + 'zmq = "tcp://127.0.0.1:1"\n', "actions.0", "got zmq, http"),
        ('[[actions]]\nkind = "death"\nhttp = "ftp://a/b"\n', "actions.0.http", "http://"),
        ('[[actions]]\nkind = "death"\nhttp = "127.0.0.1:80"\n', "actions.0.http", "https://"),
        ('[[actions]]\nkind = "deth"\nhttp = "http://a/"\n', "actions.0.kind", "unknown event"),
        ('[[actions]]\nhttp = "http://a/"\n', "actions.0.kind", "required"),
        (HTTP + 'url = "x"\n', "actions.0.url", "unknown key"),
        ('[[actions]]\nkind = "death"\ncommand = []\n', "actions.0.command", "program"),
        ('[[actions]]\nkind = "death"\ncommand = "echo hi"\n', "actions.0.command", "list of"),
        ('[actions]\nkind = "death"\nhttp = "http://a/"\n', "actions", "[[actions]] table"),
        ('[[actions]]\nkind = "death"\nzmq = "tcp://*:5570"\n', "actions.0.zmq", "a host and"),
        ('[[actions]]\nkind = "death"\nzmq = "tcp://a:99999"\n', "actions.0.zmq", "1 to 65535"),
        ('[[actions]]\nkind = "death"\nzmq = "inproc://x"\n', "actions.0.zmq", "inproc"),
        ('[[actions]]\nkind = "death"\nhttp = "http://:80/x"\n', "actions.0.http", "a host"),
        ('[[actions]]\nkind = "death"\nhttp = "http://a:99999/"\n', "actions.0.http", "65535"),
        ('[[actions]]\nkind = "death"\nhttp = "http://a:b/"\n', "actions.0.http", "65535"),
        ('[[actions]]\nkind = "death"\nhttp = "http://a/b c"\n', "actions.0.http", "%20"),
        (
            '[[actions]]\nkind = "early_necroptosis"\npathway = "necroptosis"\nhttp = "http://a/"\n',
            "actions.0",
            "early_necroptosis events have no pathway",
        ),
        ('[[actions]]\nkind = "frame"\nwell = "r0*"\nhttp = "http://a/"\n', "actions.0", "no well"),
        (
            '[[actions]]\nkind = "frame"\nmin_confidence = 0.5\nhttp = "http://a/"\n',
            "actions.0",
            "no confidence",
        ),
        (HTTP + 'retries = "3"\n', "actions.0.retries", "integer"),
        (HTTP + "timeout_s = 0\n", "actions.0.timeout_s", "greater than 0"),
        (HTTP + "queue_size = 0\n", "actions.0.queue_size", "greater than or equal to 1"),
        (HTTP + "min_confidence = 2\n", "actions.0.min_confidence", "less than or equal to 1"),
        (HTTP + 'pathway = "x"\n', "actions.0.pathway", "apoptosis"),
        ('actions = "death"\n', "actions", "tuple"),
    ],
)
def test_bad_actions_name_the_key(tmp_path: Path, actions: str, key: str, says: str) -> None:
    path = tmp_path / "livecell.toml"
    path.write_text(actions + BASE if actions.startswith("actions =") else BASE + actions)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == key, str(caught.value)
    assert says in str(caught.value)


def test_a_password_in_a_url_is_refused_without_being_repeated(tmp_path: Path) -> None:
    path = tmp_path / "livecell.toml"
    path.write_text(BASE + '[[actions]]\nkind = "death"\nhttp = "http://me:hunter2@a/x"\n')
    with pytest.raises(ConfigError, match="user:password@") as caught:
        load_config(path)
    assert "hunter2" not in str(caught.value)


def test_resolved_config_with_actions_round_trips(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        '[[actions]]\nkind = "death"\nwell = "r001\\"c*"\nhttp = "http://127.0.0.1:8000/x"\n'
        '[[actions]]\nkind = "frame"\ncommand = ["/bin/sh", "-c", "cat > /dev/null"]\n',
    )
    text = config.to_toml()
    assert text.count("[[actions]]") == 2
    assert config_from_dict(tomllib.loads(text), base_dir=Path("/elsewhere")) == config
