"""``deploy/systemd/livecell.service`` and ``deploy/livecell.toml``: valid, and what they promise.

``systemd-analyze verify`` runs on a copy whose ExecStart names the ``livecell``
executable of this environment (the unit's ``/usr/local/bin/livecell`` exists only
after an install); skipped where systemd-analyze is missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from livecell.config import load_config

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "livecell.service"
EXAMPLE = ROOT / "deploy" / "livecell.toml"
INSTALLED_EXEC = "/usr/local/bin/livecell"


def directives(text: str) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit (keys may repeat), comments left out."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def livecell_executable() -> Path:
    beside = Path(sys.executable).with_name("livecell")
    found = beside if beside.exists() else shutil.which("livecell")
    if found is None:
        pytest.skip("no livecell executable installed")
    return Path(found)


def systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
    if not Path(tool).exists():
        pytest.skip("systemd-analyze is not installed")
    return tool


def unit_copy(tmp_path: Path) -> Path:
    text = UNIT.read_text()
    assert text.count(INSTALLED_EXEC) == 1  # the install path, only in ExecStart
    copy = tmp_path / "livecell.service"
    copy.write_text(text.replace(INSTALLED_EXEC, str(livecell_executable())))
    return copy


def test_unit_promises() -> None:
    unit = directives(UNIT.read_text())

    def one(key: str) -> str:
        assert len(unit.get(key, [])) == 1, f"{key}: {unit.get(key)}"
        return unit[key][0]

    assert one("ExecStart") == f"{INSTALLED_EXEC} run -c /etc/livecell/livecell.toml"
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "30",
        "Restart": "on-failure",
        "StateDirectory": "livecell",
        "User": "livecell",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "true",
        "PrivateTmp": "true",
        "ProtectHome": "true",
        "PrivateDevices": "false",
        "DevicePolicy": "closed",
        "CapabilityBoundingSet": "",
        "SystemCallArchitectures": "native",
        "RestrictNamespaces": "true",
        "LockPersonality": "true",
        "ProtectControlGroups": "true",
        # AF_NETLINK: libzmq aborts binding tcp:// without it (getifaddrs, libzmq#4737)
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "RestartPreventExitStatus": "2",  # a configuration error: a restart cannot fix it
        "MemoryMax": "80%",
        "TasksMax": "1024",
    }
    assert {key: one(key) for key in expected} == expected
    assert "@system-service" in unit["SystemCallFilter"]
    assert any("nvidia" in d for d in unit["DeviceAllow"])
    assert "MemoryDenyWriteExecute" not in unit  # docs/service.md: JIT compilers need it off
    # SIGTERM: a frame in hand (up to 10 s), 8 s for the queue and one more frame begun
    # before that ends: systemd must not SIGKILL before that
    assert float(one("TimeoutStopSec")) >= 30


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = systemd_analyze()
    copy = unit_copy(tmp_path)
    result = subprocess.run(
        [tool, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # unknown or unparsable directives are only warnings ("..., ignoring"): none allowed
    assert str(copy) not in output, output
    assert "livecell.service" not in output, output


def test_systemd_analyze_security_exposure(tmp_path: Path) -> None:
    tool = systemd_analyze()
    copy = unit_copy(tmp_path)
    result = subprocess.run(
        [tool, "security", "--offline=true", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for livecell\.service: ([\d.]+)", result.stdout)
    if result.returncode != 0 and match is None:
        pytest.skip(f"systemd-analyze security --offline is not supported: {result.stderr[:200]}")
    assert match is not None, result.stdout[-500:]
    assert float(match.group(1)) <= 2.5, result.stdout  # "OK" starts below 4.9


def test_example_config_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.state_dir == Path("/var/lib/livecell")
    assert config.source.kind == "watch"
    assert config.source.path == Path("/data/incoming")
    assert config.sinks.events == Path("/var/lib/livecell/events.jsonl")
    assert config.metrics.address.startswith("127.0.0.1:")
    # absolute paths only: relative ones would land in /etc/livecell, read-only under the unit
    assert all(p.is_relative_to("/var/lib/livecell") for p in (config.sinks.events,))
    # the watched folder is writable in the unit (quarantine moves files out of it)
    unit = directives(UNIT.read_text())
    assert f"-{config.source.path}" in unit["ReadWritePaths"]


def test_example_config_passes_check_config() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "livecell", "check-config", str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert 'mode = "nanowell"' in result.stdout
