"""Test helpers: a real ``livecell run`` subprocess, and reading what it wrote."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def livecell(
    *args: object, cwd: Path | None = None, timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """``livecell ARGS`` as a user runs it (a subprocess; output captured as text)."""
    return subprocess.run(
        [sys.executable, "-m", "livecell", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=cwd,
        check=False,
    )


def ipv6_loopback() -> bool:
    """Whether this host can bind ``::1`` (a container may have no IPv6)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


_PORTS_GIVEN: set[int] = set()


def free_port() -> int:
    """A free TCP port on 127.0.0.1, below the kernel's ephemeral range, never the same
    one twice in a test run (two ports asked for together are both free now, not yet
    bound: a repeat would make a daemon's second bind fail).

    A port from ``bind(0)`` lies in the ephemeral range, where a ZeroMQ sender that keeps
    reconnecting to a killed daemon can be given that very port as its own source port
    (a TCP self-connect) and hold it, so the restarted daemon could not bind it.
    """
    first_ephemeral = _first_ephemeral_port()
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(10_000, first_ephemeral)
        if port in _PORTS_GIVEN:
            continue
        _PORTS_GIVEN.add(port)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between 10000 and {first_ephemeral}")


def _first_ephemeral_port() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events of the whole lines of ``path``. A last line without its newline is one
    the daemon is writing at this moment (a reader can see a write half done), and is left
    for the next read; every whole line must be JSON."""
    if not path.exists():
        return []
    *whole, _being_written = path.read_text().split("\n")
    return [json.loads(line) for line in whole if line.strip()]


def wait_for(
    condition: Callable[[], bool], *, timeout_s: float = 20.0, interval_s: float = 0.05
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def write_config(path: Path, sections: dict[str, Any]) -> Path:
    """Write a TOML config from ``{"state_dir": ..., "source": {...}, ...}``."""
    lines = [f"{k} = {toml_value(v)}" for k, v in sections.items() if not isinstance(v, dict)]
    for name, table in sections.items():
        if isinstance(table, dict):
            lines.append(f"\n[{name}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Daemon:
    """A ``livecell run`` subprocess over a config in ``workdir``."""

    workdir: Path
    config: Path
    metrics_port: int
    proc: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def events_path(self) -> Path:
        return self.workdir / "events.jsonl"

    @property
    def state_dir(self) -> Path:
        return self.workdir / "state"

    def start(self) -> Daemon:
        log = self.workdir / f"daemon-{len(self.logs)}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "livecell", "run", "-c", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        return self

    def wait_started(self, timeout_s: float = 20.0) -> None:
        """Wait until this start's source is listening/watching (its log line)."""

        def current_log() -> str:
            return self.logs[-1].read_text(errors="replace") if self.logs else ""

        ok = wait_for(
            lambda: (
                any(w in current_log() for w in ('"watching"', '"listening"'))
                or (self.proc is not None and self.proc.poll() is not None)
            ),
            timeout_s=timeout_s,
        )
        if not ok or (self.proc is not None and self.proc.poll() is not None):
            raise AssertionError(f"daemon did not start:\n{self.log_text()}")

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        events = read_events(self.events_path)
        return [e for e in events if kind is None or e["kind"] == kind]

    def wait_events(self, kind: str, count: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        wait_for(lambda: len(self.events(kind)) >= count, timeout_s=timeout_s)
        return self.events(kind)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout_s)

    def kill(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
