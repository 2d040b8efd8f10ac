"""Log lines under systemd: each carries its level's syslog priority for the journal.

journald files every stderr line at the unit's default priority unless it starts with
``<N>``; systemd tells a service its stderr is the journal with ``$JOURNAL_STREAM``.
These run ``livecell replay`` as systemd would, its stderr a real file whose
``device:inode`` is (or is not) in that variable.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from daemons import write_config


def replay_logging_to(stderr_path: Path, tmp_path: Path, journal_stream: str | None) -> list[str]:
    """The log lines of a replay of one bad file, its stderr written to ``stderr_path``."""
    (tmp_path / "frames" / "Pos0").mkdir(parents=True)
    (tmp_path / "frames" / "Pos0" / "t00001.tif").write_bytes(b"not a TIFF at all")
    config = write_config(
        tmp_path / "livecell.toml", {"state_dir": "state", "source": {"path": "frames"}}
    )
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    with stderr_path.open("w") as stderr:
        if journal_stream == "this file":
            st = os.fstat(stderr.fileno())
            journal_stream = f"{st.st_dev}:{st.st_ino}"
        if journal_stream is not None:
            env["JOURNAL_STREAM"] = journal_stream
        done = subprocess.run(
            [sys.executable, "-m", "livecell", "replay", "frames", "-c", config],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=tmp_path,
            env=env,
            timeout=120,
            check=False,
        )
    lines = stderr_path.read_text().splitlines()
    assert done.returncode == 0, lines[-20:]
    return lines


def test_lines_to_the_journal_start_with_their_syslog_priority(tmp_path: Path) -> None:
    lines = replay_logging_to(tmp_path / "stderr", tmp_path, journal_stream="this file")
    priorities = {}
    for line in lines:
        prefixed = re.fullmatch(r"<(\d)>(\{.*\})", line)
        assert prefixed is not None, line
        priorities[json.loads(prefixed.group(2))["event"]] = int(prefixed.group(1))
    assert priorities["watching"] == 6  # info
    assert priorities["rejected"] == 4  # warning: journalctl -p warning shows it


@pytest.mark.parametrize("journal_stream", [None, "0:0", "not a device"])
def test_lines_elsewhere_are_plain_json(tmp_path: Path, journal_stream: str | None) -> None:
    """No variable, or one naming another stream (the service redirected stderr)."""
    lines = replay_logging_to(tmp_path / "stderr", tmp_path, journal_stream)
    events = [json.loads(line)["event"] for line in lines]
    assert "rejected" in events
