"""The ``livecell`` command line (SPEC section 1): help, check-config, exit codes, replay.

Every command runs as a real subprocess, as a user or systemd would run it.
"""

from __future__ import annotations

import importlib.util
import json
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from daemons import Daemon, free_port, read_events, wait_for, write_config
from microscope import PushSender, frame_message, pixels_for, write_tiff

from livecell.cli import build_parser
from livecell.config import load_config

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def livecell(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "livecell", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def assert_user_error(result: subprocess.CompletedProcess[str], *names: str) -> None:
    """Exit 2, a message naming what is wrong, no traceback."""
    assert result.returncode == EXIT_USAGE, result
    assert "Traceback" not in result.stderr + result.stdout
    for name in names:
        assert name in result.stderr, (name, result.stderr)


def subcommands() -> list[str]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if a.dest == "command"]
    assert action.choices is not None
    return sorted(action.choices)


def test_console_script_help() -> None:
    script = shutil.which("livecell")
    if script is None:
        pytest.skip("the livecell console script is not on PATH")
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == EXIT_OK
    for command in ("run", "replay", "check-config"):
        assert command in result.stdout


@pytest.mark.parametrize("command", subcommands())
def test_every_subcommand_has_help(command: str) -> None:
    result = livecell(command, "--help")
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout.startswith("usage: livecell " + command)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", subcommands())
def test_every_argument_of_every_subcommand_says_what_it_is(command: str) -> None:
    (action,) = [a for a in build_parser()._actions if a.dest == "command"]
    assert action.choices is not None
    sub = action.choices[command]
    undescribed = [
        a.option_strings[0] if a.option_strings else a.dest
        for a in sub._actions
        if not a.help and a.dest != "help"
    ]
    assert undescribed == [], f"livecell {command}: no help text for {undescribed}"


def test_no_command_is_a_usage_error() -> None:
    assert_user_error(livecell(), "command")
    assert_user_error(livecell("frobnicate"), "frobnicate")
    assert_user_error(livecell("run"), "-c")


def test_check_config_prints_the_resolved_config(tmp_path: Path) -> None:
    config_file = tmp_path / "livecell.toml"
    config_file.write_text('[source]\npath = "incoming"\nsettle_s = 0.5\n')
    result = livecell("check-config", config_file)
    assert result.returncode == EXIT_OK, result.stderr
    printed = tomllib.loads(result.stdout)
    assert printed["source"]["path"] == str(tmp_path / "incoming")
    assert printed["source"]["settle_s"] == 0.5
    assert printed["metrics"]["address"] == "127.0.0.1:9108"  # a default, filled in
    echoed = tmp_path / "echoed" / "livecell.toml"
    echoed.parent.mkdir()
    echoed.write_text(result.stdout)
    assert load_config(echoed) == load_config(config_file)


def test_check_config_of_a_zmq_config_round_trips(tmp_path: Path) -> None:
    config_file = write_config(
        tmp_path / "zmq.toml",
        {"source": {"kind": "zmq", "endpoint": "tcp://127.0.0.1:7000"}, "sinks": {"tracks": ""}},
    )
    result = livecell("check-config", config_file)
    assert result.returncode == EXIT_OK, result.stderr
    echoed = tmp_path / "echoed.toml"
    echoed.write_text(result.stdout)
    assert load_config(echoed) == load_config(config_file)


@pytest.mark.parametrize(
    ("content", "names"),
    [
        ('[source]\npath = "x"\nsetle_s = 1.0\n', ["source.setle_s", "unknown key"]),
        ('[source]\npath = "x"\nsettle_s = -2\n', ["source.settle_s", "-2"]),
        ('[source]\nkind = "ftp"\n', ["source.kind", "ftp"]),
        ("[source]\npolling = true\n", ["source.path"]),
        ('[source]\npath = ""\n', ["source.path", "needs a folder name"]),
        ('state_dir = ""\n[source]\npath = "in"\n', ["state_dir", "needs a folder name"]),
        ("[source\n", ["not valid TOML"]),
    ],
)
def test_bad_config_exits_2_naming_the_key(tmp_path: Path, content: str, names: list[str]) -> None:
    config_file = tmp_path / "bad.toml"
    config_file.write_text(content)
    assert_user_error(livecell("check-config", config_file), *names)
    assert_user_error(livecell("run", "-c", config_file), *names)


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ({"analysis": {"mode": "nanowell"}, "nanowell": {"death_model": "nowhere"}},
         "nanowell.death_model"),
        ({"analysis": {"mode": "patches"}, "engine": {"model": "nowhere"}}, "engine.model"),
        ({"metrics": {"address": "127.0.0.1:{taken}"}}, "metrics.address"),
        ({"dashboard": {"address": "127.0.0.1:{taken}"}}, "dashboard.address"),
    ],
)  # fmt: skip
def test_run_with_a_model_or_address_it_cannot_use_exits_2(
    tmp_path: Path, section: dict[str, Any], named: str
) -> None:
    (tmp_path / "incoming").mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        filled = json.loads(json.dumps(section).replace("{taken}", str(port)))
        config = {"source": {"path": "incoming"}, "metrics": {"address": ""}, **filled}
        config_file = write_config(tmp_path / "c.toml", config)
        assert_user_error(livecell("run", "-c", config_file), named)


BUNDLED = Path(__file__).parents[1] / "livecell" / "engine" / "bundled"


def edited_model(name: str, folder: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of bundled model ``name`` whose card ``edit`` changes."""
    shutil.copytree(BUNDLED / name, folder)
    card = json.loads((folder / "model_card.json").read_text())
    edit(card)
    (folder / "model_card.json").write_text(json.dumps(card))
    return folder


def set_input(**values: int) -> Callable[[dict[str, Any]], None]:
    return lambda card: card["input"].update(values)


def set_crops(px: int) -> Callable[[dict[str, Any]], None]:
    return lambda card: card["input"]["crops"].update(height=px, width=px)


@pytest.mark.parametrize(
    ("mode", "section", "named", "check_config_knows"),
    [
        ("patches", {"patches": {"model": str(BUNDLED / "nanowell_cell_type")}},
         ["patches.model", "'sequence cell_type'"], True),
        ("patches", {"patches": {"model": "two-channels"}},
         ["patches.model", "one-channel"], False),
        ("patches", {"engine": {"model": str(BUNDLED / "nanowell_contact")}},
         ["engine.model"], True),
        ("patches", {"patches": {"model": "card-64px"}},
         ["patches.model", "does not match its model card", "[N, 1, 64, 64]"], False),
        ("patches", {"patches": {"model": "no-onnx"}}, ["patches.model", "livecell export"], True),
        ("nanowell", {"nanowell": {"death_model": "death-32px"}},
         ["nanowell.cell_type_model / nanowell.death_model", "--crop-px"], False),
        ("nanowell", {"engine": {"backend": "torch"}},
         ["engine.backend", "patch classifiers"], True),
    ],
)  # fmt: skip
def test_a_model_it_cannot_run_exits_2_naming_the_key(
    tmp_path: Path, mode: str, section: dict[str, Any], named: list[str], check_config_knows: bool
) -> None:
    """A model folder that exists but holds no model the mode can run: exit 2 naming the
    key, not a traceback, nor analysis failing on every frame. ``check-config`` already
    refuses what the cards and files show without loading the models."""
    edited_model("holotomo_states", tmp_path / "two-channels", set_input(channels=2))
    edited_model("holotomo_states", tmp_path / "card-64px", set_input(height=64, width=64))
    (edited_model("holotomo_states", tmp_path / "no-onnx", set_input()) / "model.onnx").unlink()
    edited_model("nanowell_death", tmp_path / "death-32px", set_crops(32))
    (tmp_path / "frames").mkdir()
    config = {"source": {"path": "frames"}, "analysis": {"mode": mode}, **section}
    config_file = write_config(tmp_path / "c.toml", {**config, "metrics": {"address": ""}})
    assert_user_error(livecell("replay", tmp_path / "frames", "-c", config_file), *named)
    if check_config_knows:
        assert_user_error(livecell("check-config", config_file), *named)


def test_check_config_notes_a_model_key_the_mode_does_not_read(tmp_path: Path) -> None:
    config = {
        "source": {"path": "frames"},
        "analysis": {"mode": "nanowell"},
        "engine": {"model": str(BUNDLED / "holotomo_states")},
    }
    result = livecell("check-config", write_config(tmp_path / "c.toml", config))
    assert result.returncode == EXIT_OK, result.stderr
    assert "note: engine.model is read in patches mode only" in result.stderr


def test_a_backend_whose_package_is_missing_exits_2_naming_engine_backend(
    tmp_path: Path,
) -> None:
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    (tmp_path / "frames").mkdir()
    config = {
        "source": {"path": "frames"},
        "analysis": {"mode": "patches"},
        "engine": {"backend": "tensorrt"},
        "metrics": {"address": ""},
    }
    config_file = write_config(tmp_path / "c.toml", config)
    result = livecell("replay", tmp_path / "frames", "-c", config_file)
    assert_user_error(result, "engine.backend", "livecell[tensorrt]")


@pytest.mark.parametrize(
    ("sections", "named"),
    [
        ({"state_dir": "c.toml"}, ["state_dir", "File exists"]),
        ({"state_dir": "/proc/livecell-nowhere"}, ["state_dir", "/proc/livecell-nowhere"]),
        ({"sinks": {"events": "a-folder"}}, ["sinks.events", "a-folder"]),
        ({"sinks": {"events": "/proc/livecell-nowhere/e.jsonl"}}, ["sinks.events"]),
    ],
)
def test_run_with_a_state_dir_or_events_file_it_cannot_make_exits_2(
    tmp_path: Path, sections: dict[str, Any], named: list[str]
) -> None:
    (tmp_path / "incoming").mkdir()
    (tmp_path / "a-folder").mkdir()
    config = {"source": {"path": "incoming"}, "metrics": {"address": ""}}
    config_file = write_config(tmp_path / "c.toml", {**sections, **config})
    assert_user_error(livecell("run", "-c", config_file), *named)
    if "sinks" in sections:
        folder = tmp_path / "frames"
        folder.mkdir()
        assert_user_error(livecell("replay", folder, "-c", config_file), *named)


def test_run_watching_a_folder_that_is_not_there_exits_2(tmp_path: Path) -> None:
    config_file = write_config(
        tmp_path / "c.toml", {"source": {"path": "incomming"}, "metrics": {"address": ""}}
    )
    assert_user_error(livecell("run", "-c", config_file), "source.path", "incomming")


@pytest.mark.parametrize(
    ("bench", "named"),
    [
        (["simulate", "--frames", "0"], "--frames"),
        (["simulate", "--frames", "1", "--size", "512"], "--size 512"),
        (["nanowell", "--size", "-5"], "--size"),
        (["engine", "--batches", "8,0"], "--batches"),
        (["engine", "--models", "nosuch"], "nosuch"),
        (["tracking", "--truth-masks", "/nonexistent"], "--truth-masks"),
        (["ingest", "--interval", "nan"], "--interval"),
        (["ingest", "--warmup", "0"], "--warmup"),  # hung: the receiver never said "warm"
        (["wells", "--size", "512"], "--size must be 768"),
        (["nanowell", "--size", "512"], "--size must be 768"),
        (["nanowell", "--frames", "1"], "--frames must be 2"),
        (["nanowell", "--interval-s", "0"], "--interval-s"),
        (["triggers", "--frames", "1"], "--skip-first"),
    ],
)
def test_bench_refuses_bad_options_naming_them(bench: list[str], named: str) -> None:
    assert_user_error(livecell("bench", *bench), named)


def test_bench_ingest_works_in_a_fresh_folder_inside_workdir_and_removes_only_that(
    tmp_path: Path,
) -> None:
    (tmp_path / "important.txt").write_text("precious")
    done = livecell("bench", "ingest", "--skip-zmq", "--skip-watch", "--workdir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["important.txt"]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--frame-stride", "0"),
        ("--window-px", "-3"),
        ("--lr", "-1"),
        ("--epochs", "inf"),
        ("--patience", "0"),
    ],
)
def test_train_refuses_bad_numbers_naming_them(tmp_path: Path, option: str, value: str) -> None:
    result = livecell("train", tmp_path, "--out", tmp_path / "m", option, value)
    assert_user_error(result, option)


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    assert_user_error(livecell("check-config", tmp_path / "nope.toml"), "nope.toml")


def test_replay_into_an_events_path_it_cannot_write_exits_2(tmp_path: Path) -> None:
    acquisition(tmp_path / "archive", positions=1, time_points=1)
    config_file = write_config(tmp_path / "c.toml", {"source": {"path": "archive"}})
    (tmp_path / "a_file").write_text("")
    for events in (tmp_path, tmp_path / "a_file" / "events.jsonl"):
        result = livecell("replay", tmp_path / "archive", "-c", config_file, "--events", events)
        assert_user_error(result, "--events")


def test_replay_of_a_missing_folder_exits_2(tmp_path: Path) -> None:
    config_file = write_config(tmp_path / "c.toml", {"source": {"path": "incoming"}})
    assert_user_error(livecell("replay", tmp_path / "nowhere", "-c", config_file), "nowhere")


def test_replay_of_a_folder_without_frames_says_so(tmp_path: Path) -> None:
    """The wrong folder (one with notes in it) is not a failure to analyse, but a user
    must not take "no new events" for a result."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a frame")
    config_file = write_config(tmp_path / "c.toml", {"source": {"path": "notes"}})
    result = livecell("replay", tmp_path / "notes", "-c", config_file)
    assert result.returncode == 0, result.stderr
    assert "no frames found in" in result.stderr
    assert "*.tif" in result.stderr
    acquisition(tmp_path / "archive", positions=1, time_points=1)
    found = livecell("replay", tmp_path / "archive", "-c", config_file, "--events", tmp_path / "e")
    assert found.returncode == 0, found.stderr
    assert "no frames found" not in found.stderr


@pytest.mark.parametrize("command", ["replay", "run"])
def test_a_full_disk_stops_with_one_line_naming_the_file(tmp_path: Path, command: str) -> None:
    """Under a file-size limit (writes fail as on a full disk) the journal cannot be made:
    exit 1 (no configuration error) and one line naming its file, not SQLite's traceback."""
    acquisition(tmp_path / "archive", positions=1, time_points=2)
    config = {"source": {"path": "archive"}, "metrics": {"address": ""}}
    config_file = write_config(tmp_path / "c.toml", config)

    def limit_file_size() -> None:  # below the 32 KiB index SQLite's WAL mode needs
        resource.setrlimit(resource.RLIMIT_FSIZE, (16_384, resource.RLIM_INFINITY))

    args = [command, "-c", config_file]
    if command == "replay":
        args.insert(1, tmp_path / "archive")
    result = subprocess.run(
        [sys.executable, "-m", "livecell", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit_file_size,
    )
    assert result.returncode == EXIT_FAILURE, result
    assert "Traceback" not in result.stderr + result.stdout
    (last,) = result.stderr.strip().splitlines()[-1:]
    assert last.startswith("livecell: "), last
    assert last.endswith("journal.sqlite3"), last


def acquisition(folder: Path, positions: int = 3, time_points: int = 4) -> list[Path]:
    """A finished acquisition: Pos*/img_t*.tif."""
    return [
        write_tiff(folder / f"Pos{p}" / f"img_t{t:04d}.tif", pixels_for(f"Pos{p}", t))
        for t in range(time_points)
        for p in range(positions)
    ]


def frame_ids(events_path: Path) -> list[str]:
    return sorted(e["event_id"] for e in read_events(events_path) if e["kind"] == "frame")


def test_replay_gives_the_same_frame_events_as_run(
    make_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    files = acquisition(tmp_path / "incoming")
    daemon = make_daemon(source={"path": "incoming", "settle_s": 0.2})
    daemon.start()
    daemon.wait_started()
    assert len(daemon.wait_events("frame", len(files))) == len(files), daemon.log_text()
    assert daemon.stop() == 0
    live = frame_ids(daemon.events_path)

    replayed = tmp_path / "replay" / "events.jsonl"
    result = livecell("replay", tmp_path / "incoming", "-c", daemon.config, "--events", replayed)
    assert result.returncode == EXIT_OK, result.stderr
    assert frame_ids(replayed) == live
    assert len(live) == len(files)
    frames = [e for e in read_events(replayed) if e["kind"] == "frame"]
    assert {e["path"] for e in frames} == {str(f) for f in files}
    assert all(path.exists() for path in files), "replay moved a file"

    before = replayed.read_bytes()
    again = livecell("replay", tmp_path / "incoming", "-c", daemon.config, "--events", replayed)
    assert again.returncode == EXIT_OK, again.stderr
    assert replayed.read_bytes() == before, "a second replay wrote events again"


def test_replay_reports_bad_and_duplicate_files_but_moves_none(tmp_path: Path) -> None:
    files = acquisition(tmp_path / "archive", positions=1, time_points=2)
    duplicate = write_tiff(tmp_path / "archive" / "Pos0" / "copy_t0001.tif", pixels_for("Pos0", 1))
    broken = tmp_path / "archive" / "Pos0" / "img_t0002.tif"
    broken.write_bytes(b"not a tiff")
    config_file = write_config(tmp_path / "c.toml", {"source": {"path": "archive"}})
    events = tmp_path / "events.jsonl"

    result = livecell("replay", tmp_path / "archive", "-c", config_file, "--events", events)
    assert result.returncode == EXIT_OK, result.stderr
    reasons = sorted(e["reason"] for e in read_events(events) if e["kind"] == "rejected")
    assert reasons == ["duplicate", "not_tiff"]
    assert all(path.exists() for path in (*files, duplicate, broken)), "replay moved a file"
    assert not (tmp_path / "state" / "quarantine").exists()


def test_replay_leaves_out_the_state_folder_inside_the_watched_one(tmp_path: Path) -> None:
    """The daemon never reads its own state (quarantined files); nor does a replay."""
    files = acquisition(tmp_path / "archive", positions=1, time_points=2)
    quarantined = tmp_path / "archive" / ".livecell" / "quarantine"
    write_tiff(quarantined / "img_t0005.tif", pixels_for("Pos0", 5))
    (quarantined / "junk_t0006.tif").write_bytes(b"junk")
    config_file = write_config(
        tmp_path / "c.toml", {"state_dir": "archive/.livecell", "source": {"path": "archive"}}
    )
    events = tmp_path / "events.jsonl"
    result = livecell("replay", tmp_path / "archive", "-c", config_file, "--events", events)
    assert result.returncode == EXIT_OK, result.stderr
    paths = sorted(e.get("path") for e in read_events(events))
    assert paths == sorted(str(f) for f in files)


def test_replay_whose_analysis_fails_says_so(tmp_path: Path) -> None:
    """Frames with no well pattern in nanowell mode: each keeps its frame event (the
    replay itself succeeds), and it ends with a line saying how many were not analysed."""
    files = acquisition(tmp_path / "archive", positions=1, time_points=2)
    config_file = write_config(
        tmp_path / "c.toml",
        {
            "source": {"path": "archive"},
            "analysis": {"mode": "nanowell"},
            "nanowell": {"segmenter": "classical"},
            "metrics": {"address": ""},
        },
    )
    events = tmp_path / "events.jsonl"
    result = livecell("replay", tmp_path / "archive", "-c", config_file, "--events", events)
    assert result.returncode == EXIT_OK, result.stderr
    assert "analysis failed on 2 frame(s)" in result.stderr
    assert "too small to hold two wells" in result.stderr
    assert sorted(e["path"] for e in read_events(events)) == sorted(str(f) for f in files)


def test_replay_runs_beside_a_live_daemon_on_the_same_config(
    make_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    """Replaying an archive while the daemon runs: same config, its own events file."""
    archive = acquisition(tmp_path / "archive", positions=1, time_points=3)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    daemon = make_daemon(
        source={"kind": "zmq", "endpoint": endpoint},
        sinks={"zmq_pub": f"tcp://127.0.0.1:{free_port()}"},
    )
    daemon.start()
    daemon.wait_started()
    out = tmp_path / "archive-events.jsonl"
    result = livecell("replay", tmp_path / "archive", "-c", daemon.config, "--events", out)
    assert result.returncode == EXIT_OK, result.stderr
    assert len(frame_ids(out)) == len(archive)

    locked = livecell("replay", tmp_path / "archive", "-c", daemon.config)
    assert locked.returncode == EXIT_FAILURE
    assert "Traceback" not in locked.stderr
    assert str(daemon.events_path) in locked.stderr
    with PushSender(endpoint) as sender:  # the daemon was not disturbed
        sender.send(frame_message("Pos0", 0))
    assert wait_for(lambda: len(daemon.events("frame")) == 1)
    assert daemon.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_command_stopped_before_it_finished_exits_1_and_says_so(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """Ctrl-C or SIGTERM to a command that does not stop cleanly (here a long simulation)
    is not success: ``simulate ... && train ...`` must not go on."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "livecell", "simulate", tmp_path / "sim", "--kind", "nanowell",
         "--frames", "500", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert wait_for(lambda: (tmp_path / "sim" / "frames").exists(), timeout_s=60)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_FAILURE, stderr
    assert "livecell simulate: interrupted" in stderr
    assert "Traceback" not in stderr


def test_nanowell_on_the_torch_backend_is_fine_without_its_onnx_models(tmp_path: Path) -> None:
    """The classical segmenter runs no model on the engine backend (the sequence models run
    on ONNX Runtime whatever it is), so ``backend = "torch"`` is no error there."""
    config = {
        "source": {"path": "frames"},
        "analysis": {"mode": "nanowell"},
        "nanowell": {"segmenter": "classical"},
        "engine": {"backend": "torch"},
    }
    result = livecell("check-config", write_config(tmp_path / "c.toml", config))
    assert result.returncode == EXIT_OK, result.stderr
