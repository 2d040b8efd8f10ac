"""``livecell demo`` for real: a subprocess simulating, analysing and summarising."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

LIVECELL = [sys.executable, "-m", "livecell"]


def _demo(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*LIVECELL, "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _read_until(proc: subprocess.Popen[str], marker: str, lines: list[str]) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if marker in line:
            return line
    raise AssertionError(f"{marker!r} never printed; got {''.join(lines)}")


@pytest.mark.slow
def test_demo_runs_to_the_end_and_can_be_scored(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    with socket.socket() as busy:  # the asked-for port is taken: the demo picks another
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        proc = _demo("--frames", "6", "--interval", "0.5", "--out", str(out), "--port", str(taken))
        lines: list[str] = []
        metrics_line = _read_until(proc, "metrics", lines)
        assert f"port {taken} is taken" in metrics_line
        url = metrics_line.split()[1]
        _read_until(proc, "what happened", lines)  # models warm, the microscope started
        with urllib.request.urlopen(url, timeout=5) as response:
            assert b"livecell_frames_total" in response.read()
        rest, stderr = proc.communicate(timeout=120)
    output = "".join(lines) + rest
    assert proc.returncode == 0, output + stderr
    assert "Traceback" not in stderr
    assert "livecell demo done:" in output
    assert "frames        6 of 6 analysed" in output
    assert "frames 6/6 analysed" in output  # the last progress line
    assert "frame 6" in output.split("livecell demo done:")[1]
    assert "p99" in output
    assert "interval 0.50 s" in output
    assert f"events file   {out / 'events.jsonl'}" in output
    command = next(line for line in output.splitlines() if "score it" in line)
    assert command.split("score it")[1].split()[:3] == [
        "livecell",
        "evaluate",
        str(out / "ground_truth"),
    ]

    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert sorted(e["t"] for e in events if e["kind"] == "frame") == list(range(6))
    assert (out / "tracks.csv").read_text().startswith("position,t,track,well")

    scored = subprocess.run(
        [
            *LIVECELL,
            "evaluate",
            str(out / "ground_truth"),
            "--events",
            str(out / "events.jsonl"),
            "--tracks",
            str(out / "tracks.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    assert scored.returncode == 0, scored.stderr
    assert "Tracking" in scored.stdout


@pytest.mark.slow
def test_ctrl_c_ends_cleanly_with_the_summary(tmp_path: Path) -> None:
    out = str(tmp_path / "d")
    proc = _demo("--frames", "40", "--interval", "0.5", "--out", out, "--no-metrics")
    lines: list[str] = []
    _read_until(proc, "what happened", lines)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    rest, stderr = proc.communicate(timeout=60)
    output = "".join(lines) + rest
    assert proc.returncode == 0, output + stderr
    assert "Traceback" not in stderr
    assert "livecell demo stopped early:" in output
    assert "of 40 analysed" in output


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--frames", "0"], "--frames"),
        (["--wells", "2"], "--wells"),
        (["--interval", "-1"], "--interval"),
        (["--interval", "inf"], "--interval"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_bad_options_exit_2_naming_the_option(args: list[str], words: str) -> None:
    result = subprocess.run(
        [*LIVECELL, "demo", *args], capture_output=True, text=True, timeout=60, env=_env()
    )
    assert result.returncode == 2
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def test_out_must_be_new_or_empty(tmp_path: Path) -> None:
    (tmp_path / "something.txt").write_text("x")
    result = subprocess.run(
        [*LIVECELL, "demo", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert result.returncode == 2
    assert "--out" in result.stderr
    assert "new or empty" in result.stderr
