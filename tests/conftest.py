"""Shared fixtures; the helpers they use live in ``daemons.py``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from daemons import Daemon, free_port, write_config


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """``make_daemon(source={...}, **sections)``: write a config, return a (stopped) Daemon."""
    daemons: list[Daemon] = []

    def make(**sections: Any) -> Daemon:
        port = free_port()
        sections.setdefault("state_dir", "state")
        sections.setdefault("metrics", {"address": f"127.0.0.1:{port}"})
        config = write_config(tmp_path / "livecell.toml", sections)
        daemon = Daemon(workdir=tmp_path, config=config, metrics_port=port)
        daemons.append(daemon)
        return daemon

    yield make
    for daemon in daemons:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.kill()
